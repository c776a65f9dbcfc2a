"""Shopify's calculated query cost, for a parsed GraphQL operation.

The model (facts file, section 3.2): scalars and enums cost 0; an object costs 1 plus its
selections; a connection costs 2 plus `first`/`last` times the cost of one node (edges, node,
nodes and pageInfo add nothing themselves); a top-level mutation field costs 10; `nodes(ids:)`
costs one node per id; an abstract type costs the most expensive of its type-conditioned
fragments. Plain lists without a `first` argument count as one object.

The requested cost is computed from the query before execution; the actual cost walks the
returned data the same way, counting the nodes that really came back.
"""

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


def _is_list(field_type: Any) -> bool:
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList)


def _argument(field: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for argument in field.arguments or ():
        if argument.name.value == name:
            if isinstance(argument.value, VariableNode):
                return variables.get(argument.value.name.value)
            return value_from_ast_untyped(argument.value, variables)
    return None


def _page_size(field: FieldNode, variables: dict[str, Any]) -> int:
    for name in ("first", "last"):
        value = _argument(field, name, variables)
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
        self.mutation_fields = (
            [s for s in operation.selection_set.selections if isinstance(s, FieldNode)] if self.is_mutation else []
        )
        # Deprecated fields do not depend on variables: find them once per document.
        self._walk_requested(operation.selection_set, self.root_type, {}, collect=True)

    # --- requested ---------------------------------------------------------------------------

    def requested_cost(self, variables: dict[str, Any]) -> int:
        """Cost Shopify would reserve before running the operation with these variables."""
        if self.is_mutation:
            return MUTATION_COST * sum(1 for f in self.mutation_fields if not f.name.value.startswith("__"))
        return int(self._walk_requested(self.operation.selection_set, self.root_type, variables))

    def _groups(self, selection_set: SelectionSetNode, parent: Any):
        """Yield (type condition or None, selection) pairs, flattening fragments."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield None, selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else None
                yield condition, selection.selection_set
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    yield fragment.type_condition.name.value, fragment.selection_set

    def _walk_requested(
        self, selection_set: SelectionSetNode, parent: Any, variables: dict, collect: bool = False
    ) -> float:
        direct = 0.0
        by_type: dict[str, float] = {}
        for condition, selection in self._groups(selection_set, parent):
            if isinstance(selection, FieldNode):
                direct += self._field_requested(selection, parent, variables, collect)
            else:
                target = self.schema.get_type(condition) if condition else parent
                cost = self._walk_requested(selection, target, variables, collect)
                if target is parent or condition is None:
                    direct += cost
                else:
                    by_type[condition] = by_type.get(condition, 0.0) + cost
        return direct + max(by_type.values(), default=0.0)

    def _field_requested(self, field: FieldNode, parent: Any, variables: dict, collect: bool) -> float:
        name = field.name.value
        fields = getattr(parent, "fields", None)
        if name.startswith("__") or fields is None or name not in fields:
            return 0.0
        definition = fields[name]
        if collect and definition.deprecation_reason:
            self.deprecations.add(f"{parent.name}.{name}")
        named = get_named_type(definition.type)
        if not is_composite_type(named) or field.selection_set is None:
            return 0.0
        if named.name.endswith("Connection"):
            item = self._connection_item_requested(field.selection_set, named, variables, collect)
            return CONNECTION_BASE_COST + _page_size(field, variables) * item
        child = self._walk_requested(field.selection_set, named, variables, collect)
        if parent is self.root_type and name == "nodes":
            ids = _argument(field, "ids", variables)
            return (len(ids) if isinstance(ids, list) else 1) * (1 + child)
        if _is_list(definition.type) and _argument(field, "first", variables):
            return _page_size(field, variables) * (1 + child)
        return 1 + child

    def _connection_item_requested(
        self, selection_set: SelectionSetNode, connection: Any, variables: dict, collect: bool
    ) -> float:
        best = 0.0
        for _, selection in self._groups(selection_set, connection):
            if not isinstance(selection, FieldNode):
                best = max(best, self._connection_item_requested(selection, connection, variables, collect))
                continue
            name = selection.name.value
            definition = connection.fields.get(name)
            if definition is None or selection.selection_set is None:
                continue
            named = get_named_type(definition.type)
            if name == "edges":
                for _, edge_sel in self._groups(selection.selection_set, named):
                    if isinstance(edge_sel, FieldNode) and edge_sel.name.value == "node" and edge_sel.selection_set:
                        node_type = get_named_type(named.fields["node"].type)
                        best = max(
                            best, 1 + self._walk_requested(edge_sel.selection_set, node_type, variables, collect)
                        )
            elif name == "nodes":
                best = max(best, 1 + self._walk_requested(selection.selection_set, named, variables, collect))
            elif collect:
                self._walk_requested(selection.selection_set, named, variables, collect)
        return best

    # --- actual ------------------------------------------------------------------------------

    def actual_cost(self, data: dict | None, variables: dict[str, Any]) -> int:
        """Cost of what the operation really returned."""
        if data is None:
            return 0
        if self.is_mutation:
            return MUTATION_COST * sum(1 for f in self.mutation_fields if data.get(_key(f)) is not None)
        return int(self._walk_actual(self.operation.selection_set, self.root_type, data))

    def _walk_actual(self, selection_set: SelectionSetNode, parent: Any, data: dict) -> float:
        direct = 0.0
        by_type: dict[str, float] = {}
        for condition, selection in self._groups(selection_set, parent):
            if isinstance(selection, FieldNode):
                direct += self._field_actual(selection, parent, data.get(_key(selection)))
            else:
                target = self.schema.get_type(condition) if condition else parent
                cost = self._walk_actual(selection, target, data)
                if target is parent or condition is None:
                    direct += cost
                else:
                    by_type[condition] = max(by_type.get(condition, 0.0), cost)
        return direct + max(by_type.values(), default=0.0)

    def _field_actual(self, field: FieldNode, parent: Any, value: Any) -> float:
        if value is None:
            return 0.0
        name = field.name.value
        fields = getattr(parent, "fields", None)
        if name.startswith("__") or fields is None or name not in fields:
            return 0.0
        definition = fields[name]
        named = get_named_type(definition.type)
        if not is_composite_type(named) or field.selection_set is None:
            return 0.0
        if named.name.endswith("Connection"):
            return CONNECTION_BASE_COST + self._connection_actual(field.selection_set, named, value)
        if isinstance(value, list):
            items = [v for v in value if v is not None]
            if not items:
                return 0.0
            counted = (
                items if (parent is self.root_type and name == "nodes") or _argument(field, "first", {}) else items[:1]
            )
            return sum(1 + self._walk_actual(field.selection_set, named, item) for item in counted)
        return 1 + self._walk_actual(field.selection_set, named, value)

    def _connection_actual(self, selection_set: SelectionSetNode, connection: Any, value: dict) -> float:
        per_item: dict[int, float] = {}
        for _, selection in self._groups(selection_set, connection):
            if not isinstance(selection, FieldNode) or selection.selection_set is None:
                continue
            name = selection.name.value
            definition = connection.fields.get(name)
            items = value.get(_key(selection))
            if definition is None or not items:
                continue
            named = get_named_type(definition.type)
            if name == "edges":
                node_type = get_named_type(named.fields["node"].type)
                for edge_sel in selection.selection_set.selections:
                    if isinstance(edge_sel, FieldNode) and edge_sel.name.value == "node" and edge_sel.selection_set:
                        for index, edge in enumerate(items):
                            node = edge.get(_key(edge_sel))
                            if node is not None:
                                cost = 1 + self._walk_actual(edge_sel.selection_set, node_type, node)
                                per_item[index] = max(per_item.get(index, 0.0), cost)
            elif name == "nodes":
                for index, node in enumerate(items):
                    if node is not None:
                        cost = 1 + self._walk_actual(selection.selection_set, named, node)
                        per_item[index] = max(per_item.get(index, 0.0), cost)
        return sum(per_item.values())


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value
