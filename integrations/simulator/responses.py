"""Request and response values passed between the HTTP server and the API handlers, and
Shopify's error bodies."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

# Error bodies as Shopify sends them (facts file, section 4).
ERROR_BODIES: dict[int, Any] = {
    401: {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
    402: {"errors": "Unavailable Shop"},
    404: {"errors": "Not Found"},
    423: {"errors": "This shop is unavailable"},
    500: {"errors": "An unexpected error occurred"},
    502: {"errors": "Bad Gateway"},
    503: {"errors": "Service Unavailable"},
    504: {"errors": "Gateway Timeout"},
}
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    414: "URI Too Long",
    422: "Unprocessable Entity",
    423: "Locked",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Request:
    """An HTTP request as the handlers see it (path already URL-decoded)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # case-insensitive get()
    body: bytes
    host: str = "127.0.0.1"

    def params(self) -> dict[str, str]:
        """Query-string parameters (first value of each)."""
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def header(self, name: str, default: str = "") -> str:
        """A request header by case-insensitive name."""
        return self.headers.get(name) or default

    def json(self) -> Any:
        """The body parsed as JSON (None when empty); raises ValueError when malformed."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


@dataclass
class Response:
    """An HTTP response; the server adds Content-Length."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def dumps(data: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response."""
    return Response(status, dumps(data), [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])


def error_response(status: int, headers: list[tuple[str, str]] | None = None, body: Any = None) -> Response:
    """Shopify's error body for `status` (or `body` when given)."""
    return json_response(
        status,
        body if body is not None else ERROR_BODIES.get(status, {"errors": REASONS.get(status, "Error")}),
        headers,
    )
