"""Shopify's calculated query cost, for a parsed GraphQL operation.

The model (facts file, section 3.2): scalars and enums cost 0; an object costs 1 plus its
selections; a connection costs 2 plus `first`/`last` times the cost of one node (edges, node,
nodes and pageInfo add nothing themselves); a top-level mutation field costs 10; `nodes(ids:)`
costs one node per id; an abstract type costs the most expensive of its type-conditioned
fragments. A plain list counts as one object, or as `first` objects when it takes `first`.

The requested cost is computed from the query before execution; the actual cost walks the
returned data the same way, counting the nodes that really came back. Both walk a plan compiled
once per operation that keeps only the fields that cost something, so scalars are never visited.
"""

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.utilities import value_from_ast_untyped

MUTATION_COST = 10
CONNECTION_BASE_COST = 2


@dataclass
class _Selection:
    """The costly fields of a selection set; fragments on other types are grouped by type."""

    direct: list["_Field"] = field(default_factory=list)
    typed: dict[str, list["_Field"]] = field(default_factory=dict)

    def merge(self, other: "_Selection", condition: str | None) -> None:
        """Add `other`'s fields, under the type `condition` when it names another type."""
        if condition is None:
            self.direct.extend(other.direct)
            for name, fields in other.typed.items():
                self.typed.setdefault(name, []).extend(fields)
        else:
            group = self.typed.setdefault(condition, [])
            group.extend(other.direct)
            for fields in other.typed.values():
                group.extend(fields)


@dataclass
class _Field:
    key: str  # response key (alias or name)
    node: FieldNode
    kind: str  # object, list, sized_list, nodes, connection
    child: _Selection | None = None
    edges: list[tuple[str, str, _Selection]] = field(default_factory=list)  # (edges key, node key, plan)
    nodes: list[tuple[str, _Selection]] = field(default_factory=list)  # (nodes key, plan)


def _is_list(field_type: Any) -> bool:
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _argument(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for argument in node.arguments or ():
        if argument.name.value == name:
            if isinstance(argument.value, VariableNode):
                return variables.get(argument.value.name.value)
            return value_from_ast_untyped(argument.value, variables)
    return None


def _has_argument(node: FieldNode, name: str) -> bool:
    return any(argument.name.value == name for argument in node.arguments or ())


def _page_size(node: FieldNode, variables: dict[str, Any]) -> int:
    for name in ("first", "last"):
        value = _argument(node, name, variables)
        if isinstance(value, int) and value > 0:
            return value
    return 0


class OperationAnalysis:
    """Cost and deprecation facts about one operation of a document."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> None:
        self.schema = schema
        self.operation = operation
        self.is_mutation = operation.operation == OperationType.MUTATION
        self.root_type = schema.mutation_type if self.is_mutation else schema.query_type
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.deprecations: set[str] = set()
        self.mutation_keys = [
            _key(s)
            for s in operation.selection_set.selections
            if isinstance(s, FieldNode) and not s.name.value.startswith("__")
        ]
        self.plan = self._compile(operation.selection_set, self.root_type, root=True)

    # --- compiling ---------------------------------------------------------------------------

    def _flatten(self, selection_set: SelectionSetNode):
        """Yield (type condition or None, FieldNode or nested selection set)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield None, selection
            elif isinstance(selection, InlineFragmentNode):
                yield (
                    (selection.type_condition.name.value if selection.type_condition else None),
                    selection.selection_set,
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    yield fragment.type_condition.name.value, fragment.selection_set

    def _compile(self, selection_set: SelectionSetNode, parent: Any, root: bool = False) -> _Selection:
        plan = _Selection()
        for condition, selection in self._flatten(selection_set):
            if isinstance(selection, FieldNode):
                compiled = self._compile_field(selection, parent, root)
                if compiled is not None:
                    plan.direct.append(compiled)
                continue
            target = self.schema.get_type(condition) if condition else parent
            same_type = condition is None or target is parent
            plan.merge(self._compile(selection, target, root), None if same_type else condition)
        return plan

    def _compile_field(self, node: FieldNode, parent: Any, root: bool) -> _Field | None:
        name = node.name.value
        fields = getattr(parent, "fields", None)
        if name.startswith("__") or fields is None or name not in fields:
            return None
        definition = fields[name]
        if definition.deprecation_reason:
            self.deprecations.add(f"{parent.name}.{name}")
        named = get_named_type(definition.type)
        if not is_composite_type(named) or node.selection_set is None:
            return None
        if named.name.endswith("Connection"):
            compiled = _Field(_key(node), node, "connection")
            self._compile_connection(node.selection_set, named, compiled)
            return compiled
        child = self._compile(node.selection_set, named)
        if root and name == "nodes":
            kind = "nodes"
        elif _is_list(definition.type):
            kind = "sized_list" if _has_argument(node, "first") else "list"
        else:
            kind = "object"
        return _Field(_key(node), node, kind, child)

    def _compile_connection(self, selection_set: SelectionSetNode, connection: Any, target: _Field) -> None:
        for _, selection in self._flatten(selection_set):
            if not isinstance(selection, FieldNode):
                self._compile_connection(selection, connection, target)
                continue
            name = selection.name.value
            definition = connection.fields.get(name)
            if definition is None or selection.selection_set is None:
                continue
            named = get_named_type(definition.type)
            if name == "edges":
                node_type = get_named_type(named.fields["node"].type)
                for _, edge_selection in self._flatten(selection.selection_set):
                    if (
                        isinstance(edge_selection, FieldNode)
                        and edge_selection.name.value == "node"
                        and edge_selection.selection_set
                    ):
                        plan = self._compile(edge_selection.selection_set, node_type)
                        target.edges.append((_key(selection), _key(edge_selection), plan))
            elif name == "nodes":
                target.nodes.append((_key(selection), self._compile(selection.selection_set, named)))
            else:
                self._compile(selection.selection_set, named)  # pageInfo: free, but may use deprecated fields

    # --- requested ---------------------------------------------------------------------------

    def requested_cost(self, variables: dict[str, Any]) -> int:
        """Cost Shopify would reserve before running the operation with these variables."""
        if self.is_mutation:
            return MUTATION_COST * len(self.mutation_keys)
        return int(self._requested(self.plan, variables))

    def _requested(self, plan: _Selection, variables: dict) -> float:
        total = sum(self._requested_field(f, variables) for f in plan.direct)
        if plan.typed:
            total += max(sum(self._requested_field(f, variables) for f in fields) for fields in plan.typed.values())
        return total

    def _requested_field(self, compiled: _Field, variables: dict) -> float:
        if compiled.kind == "connection":
            plans = [p for _, _, p in compiled.edges] + [p for _, p in compiled.nodes]
            item = max((1 + self._requested(p, variables) for p in plans), default=0.0)
            return CONNECTION_BASE_COST + _page_size(compiled.node, variables) * item
        each = 1 + self._requested(compiled.child, variables)
        if compiled.kind == "nodes":
            ids = _argument(compiled.node, "ids", variables)
            return (len(ids) if isinstance(ids, list) else 1) * each
        if compiled.kind == "sized_list":
            return max(1, _page_size(compiled.node, variables)) * each
        return each

    # --- actual ------------------------------------------------------------------------------

    def actual_cost(self, data: dict | None) -> int:
        """Cost of what the operation really returned."""
        if data is None:
            return 0
        if self.is_mutation:
            return MUTATION_COST * sum(1 for key in self.mutation_keys if data.get(key) is not None)
        return int(self._actual(self.plan, data))

    def _actual(self, plan: _Selection, data: dict) -> float:
        total = 0.0
        for compiled in plan.direct:
            value = data.get(compiled.key)
            if value is not None:
                total += self._actual_field(compiled, value)
        if plan.typed:
            total += max(
                sum(self._actual_field(f, data[f.key]) for f in fields if data.get(f.key) is not None)
                for fields in plan.typed.values()
            )
        return total

    def _actual_field(self, compiled: _Field, value: Any) -> float:
        kind = compiled.kind
        if kind == "object":
            return 1 + self._actual(compiled.child, value)
        if kind == "connection":
            per_item: dict[int, float] = {}
            for edges_key, node_key, plan in compiled.edges:
                for index, edge in enumerate(value.get(edges_key) or ()):
                    node = edge.get(node_key)
                    if node is not None:
                        per_item[index] = max(per_item.get(index, 0.0), 1 + self._actual(plan, node))
            for nodes_key, plan in compiled.nodes:
                for index, node in enumerate(value.get(nodes_key) or ()):
                    if node is not None:
                        per_item[index] = max(per_item.get(index, 0.0), 1 + self._actual(plan, node))
            return CONNECTION_BASE_COST + sum(per_item.values())
        items = [item for item in value if item is not None]
        if kind == "list":
            items = items[:1]
        return sum(1 + self._actual(compiled.child, item) for item in items)
