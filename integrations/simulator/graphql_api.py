"""GraphQL Admin API endpoint: schema subset (graphql_schema.py) executed with graphql-core,
query cost and throttling, deprecation reporting, and Shopify's error shapes.

Parsed and validated documents are cached by query string, so a repeated query pays only for
execution. Resolvers live in graphql_resolvers.py (reads) and graphql_mutations.py (writes).
"""

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, build_schema, execute, get_operation_ast, parse, validate

from integrations.simulator.buckets import GRAPHQL_SINGLE_QUERY_MAX_COST
from integrations.simulator.cost import OperationAnalysis
from integrations.simulator.graphql_mutations import MUTATION_RESOLVERS
from integrations.simulator.graphql_resolvers import QUERY_RESOLVERS, Context, wire
from integrations.simulator.graphql_schema import SDL
from integrations.simulator.store import Shop

log = logging.getLogger(__name__)

RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"
SCHEMA = build_schema(SDL)
wire(SCHEMA, {**QUERY_RESOLVERS, "Mutation": MUTATION_RESOLVERS})


@dataclass
class GraphQLOutcome:
    """HTTP status, JSON payload and deprecations used, for one GraphQL request."""

    status: int
    payload: dict
    deprecations: list[str]


# --- execution ----------------------------------------------------------------------------------------


class _DocumentCache:
    """Parsed and validated documents by query string (bounded; cleared when full)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: dict[str, tuple[DocumentNode | None, list[dict] | None]] = {}
        self._analyses: dict[tuple[str, str | None], OperationAnalysis] = {}

    def document(self, query: str) -> tuple[DocumentNode | None, list[dict] | None]:
        """(document, None) when `query` parses and validates, else (None, formatted errors)."""
        entry = self._entries.get(query)
        if entry is None:
            try:
                document = parse(query)
            except GraphQLError as error:
                entry = (None, [error.formatted])
            else:
                errors = validate(SCHEMA, document)
                entry = (None, [e.formatted for e in errors]) if errors else (document, None)
            if len(self._entries) >= self.size:
                self._entries.clear()
                self._analyses.clear()
            self._entries[query] = entry
        return entry

    def analysis(self, query: str, document: DocumentNode, operation_name: str | None) -> OperationAnalysis | None:
        """Cost analysis of the named (or only) operation; None when there is no such operation."""
        key = (query, operation_name)
        analysis = self._analyses.get(key)
        if analysis is None:
            operation = get_operation_ast(document, operation_name)
            if operation is None:
                return None
            analysis = self._analyses[key] = OperationAnalysis(SCHEMA, document, operation)
        return analysis


DOCUMENTS = _DocumentCache()


def bad_request_body() -> GraphQLOutcome:
    """Shopify's 400 for a body without a usable query."""
    return GraphQLOutcome(400, {"errors": {"query": "Required parameter missing or invalid"}}, [])


def _cost(requested: int | None, actual: int | None, shop: Shop) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.graphql_bucket.status(),
        }
    }


def _format_error(error: GraphQLError, request_id: str) -> dict:
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        log.error("GraphQL resolver failed (request %s)", request_id, exc_info=original)
        formatted = error.formatted
        formatted["message"] = (
            f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} (include this in support requests)."
        )
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return formatted
    return error.formatted


def _never_awaitable(_value: Any) -> bool:
    """Every resolver here is synchronous; skipping graphql-core's awaitable probe saves time."""
    return False


def run_graphql(
    shop: Shop,
    version: str,
    request_id: str,
    query: str,
    variables: dict | None,
    operation_name: str | None,
    stall: float = 0.0,
) -> GraphQLOutcome:
    """Execute one GraphQL request against `shop`, with cost throttling and scope checks.

    `stall` is a slow_responses delay: spent inside an idempotent mutation after its key is
    registered (lock released), otherwise before taking the shop lock.
    """
    variables = variables or {}
    document, errors = DOCUMENTS.document(query)
    if document is None:
        return GraphQLOutcome(200, {"errors": errors}, [])
    analysis = DOCUMENTS.analysis(query, document, operation_name)
    if analysis is None:
        message = (
            "An operation name is required" if operation_name is None else f"No operation named {operation_name!r}"
        )
        return GraphQLOutcome(200, {"errors": [{"message": message}]}, [])
    deprecations = set(analysis.deprecations)
    if stall and not analysis.is_mutation:
        time.sleep(stall)
        stall = 0.0
    requested = analysis.requested_cost(variables)
    if requested > GRAPHQL_SINGLE_QUERY_MAX_COST:
        with shop.lock:
            extensions = _cost(requested, None, shop)
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit ({GRAPHQL_SINGLE_QUERY_MAX_COST}).\n\n"
            f"See {RATE_LIMIT_DOCS} for more information on how the cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead."
        )
        error = {
            "message": message,
            "extensions": {
                "code": "MAX_COST_EXCEEDED",
                "cost": requested,
                "maxCost": GRAPHQL_SINGLE_QUERY_MAX_COST,
                "documentation": RATE_LIMIT_DOCS,
            },
        }
        return GraphQLOutcome(200, {"errors": [error], "extensions": extensions}, sorted(deprecations))
    with shop.lock:
        if shop.throttling:
            if shop.faults.hit("throttle_storm"):
                shop.graphql_bucket.drain()
            if not shop.graphql_bucket.consume(requested):
                throttled = {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS},
                }
                return GraphQLOutcome(
                    200, {"errors": [throttled], "extensions": _cost(requested, None, shop)}, sorted(deprecations)
                )
        ctx = Context(shop, version, request_id, stall=stall)
        result = execute(
            SCHEMA,
            document,
            context_value=ctx,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=_never_awaitable,
        )
        actual = analysis.actual_cost(result.data) if result.data is not None else 0
        if shop.throttling:
            shop.graphql_bucket.refund(requested - actual)
        extensions = _cost(requested, actual, shop)
    if stall and not ctx.stalled:
        time.sleep(stall)
    deprecations |= ctx.deprecations
    payload: dict[str, Any] = {}
    if result.errors:
        payload["errors"] = [_format_error(e, request_id) for e in result.errors]
    payload["data"] = result.data
    payload["extensions"] = extensions
    return GraphQLOutcome(200, payload, sorted(deprecations))


def parse_request_body(body: bytes, content_type: str) -> tuple[str, dict | None, str | None] | None:
    """(query, variables, operationName) from a GraphQL POST body, or None when unusable."""
    if content_type.startswith("application/graphql"):
        text = body.decode("utf-8", "replace")
        return (text, None, None) if text.strip() else None
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str) or not data["query"].strip():
        return None
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return None
    operation = data.get("operationName")
    return data["query"], variables, operation if isinstance(operation, str) else None


__all__ = ["SCHEMA", "GraphQLOutcome", "bad_request_body", "parse_request_body", "run_graphql"]
