"""The one Admin API client: the only code in the console that talks to Shopify.

A pooled `requests` session per thread, connect and read timeouts from settings, the shop's own
base URL and API version (so a shop pointed at the simulator works unchanged). It never raises for
what Shopify or the network did: every answer, timeout and refused connection comes back as a
`Reply` holding what an OutboundAttempt records, for `classify` to judge.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from integrations.models import Shop

USER_AGENT = "shopify-support-console/1.0"
EXCERPT_CHARS = 2000
_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)  # we retry, not urllib3
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session


@dataclass
class Reply:
    """What one request to Shopify came back with (or why nothing did)."""

    http_status: int | None = None
    body: dict | list | None = None
    transport_error: str = ""  # "timeout" or "connection", with `error_message`
    error_message: str = ""
    duration_ms: int = 0
    request_id: str = ""
    retry_after: float | None = None
    deprecation: str = ""  # X-Shopify-API-Deprecated-Reason: the deprecated things the request used
    api_version: str = ""  # X-Shopify-API-Version: the version that answered
    call_limit: str = ""
    location: str = ""  # a redirect's target (never followed)
    excerpt: str = ""
    error_codes: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # top-level GraphQL errors
    requested_cost: int | None = None
    actual_cost: int | None = None
    bucket_available: float | None = None
    bucket_maximum: float | None = None
    restore_rate: float | None = None

    @property
    def data(self) -> dict:
        return (self.body or {}).get("data") or {} if isinstance(self.body, dict) else {}

    def failure(self) -> str:
        """Why this answer is not a usable one, in words ("" when it is): for reads and token
        exchanges, which need no retry policy (the sender's calls go through `classify`)."""
        if self.transport_error == "timeout":
            return f"no answer in time ({self.error_message})"
        if self.transport_error:
            return f"could not reach Shopify ({self.error_message})"
        status = self.http_status or 0
        if status == 401:
            return "HTTP 401: Shopify refused the access token (revoked, expired or wrong)"
        if status != 200:
            body = self.body
            if isinstance(body, dict) and ("error" in body or "errors" in body):
                error = body.get("error") or body.get("errors")
                described = body.get("error_description")
                detail = f"{error}: {described}" if described else str(error)
            else:
                detail = self.excerpt[:300] or "(empty body)"
            return f"HTTP {status}: {detail}"[:1000]
        if self.errors:
            return "; ".join(
                str(error.get("message", ""))
                + (f" [{code}]" if (code := (error.get("extensions") or {}).get("code")) else "")
                for error in self.errors
            )[:1000]
        return ""


class AdminClient:
    """Admin API calls for one shop."""

    def __init__(self, shop: Shop, *, connect_timeout: float | None = None, read_timeout: float | None = None):
        self.shop = shop
        self.timeout = (
            connect_timeout if connect_timeout is not None else settings.OUTBOUND_CONNECT_TIMEOUT,
            read_timeout if read_timeout is not None else settings.OUTBOUND_READ_TIMEOUT,
        )

    def url(self, path: str, *, versioned: bool = True) -> str:
        base = self.shop.admin_base_url
        if versioned:
            return f"{base}/admin/api/{self.shop.api_version}/{path.lstrip('/')}"
        return f"{base}/admin/{path.lstrip('/')}"

    def graphql(self, document: str, variables: dict | None = None) -> Reply:
        body = json.dumps({"query": document, "variables": variables or {}})
        reply = self._send("POST", self.url("graphql.json"), data=body)
        _read_graphql(reply)
        return reply

    def rest_get(self, path: str, *, params: dict | None = None, versioned: bool = True) -> Reply:
        return self._send("GET", self.url(path, versioned=versioned), params=params)

    def exchange_token(self, **fields: str) -> Reply:
        """`POST /admin/oauth/access_token` with these form fields (grant_type=refresh_token,
        client_id, client_secret, refresh_token): Shopify's token endpoint, unversioned, sent
        without the access token (it is the thing being replaced). The answer holds secrets, so
        the Reply's excerpt is left empty; read them from `body`."""
        body = json.dumps(fields)
        reply = self._send("POST", self.url("oauth/access_token", versioned=False), data=body, with_token=False)
        reply.excerpt = ""
        return reply

    def _send(self, method: str, url: str, *, with_token: bool = True, **kwargs) -> Reply:
        headers = {"Accept": "application/json"}
        if with_token:
            headers["X-Shopify-Access-Token"] = self.shop.access_token
        if method == "POST":
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        reply = Reply()
        try:
            # Never follow a redirect: requests would carry X-Shopify-Access-Token to the other host.
            response = _session().request(
                method, url, headers=headers, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.Timeout as exc:
            reply.transport_error, reply.error_message = "timeout", _short(exc)
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            reply.transport_error, reply.error_message = "bad_url", _short(exc)
        except requests.RequestException as exc:
            reply.transport_error, reply.error_message = "connection", _short(exc)
        else:
            _read_response(reply, response)
        reply.duration_ms = int((time.monotonic() - started) * 1000)
        return reply


def _short(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:500]


def _read_response(reply: Reply, response: requests.Response) -> None:
    reply.http_status = response.status_code
    headers = response.headers
    reply.request_id = headers.get("X-Request-Id", "")[:100]
    reply.call_limit = headers.get("X-Shopify-Shop-Api-Call-Limit", "")[:20]
    reply.deprecation = headers.get("X-Shopify-API-Deprecated-Reason", "")[:2000]
    reply.api_version = headers.get("X-Shopify-API-Version", "")[:16]
    reply.retry_after = _retry_after(headers.get("Retry-After"))
    reply.location = headers.get("Location", "")[:500]
    text = response.text
    reply.excerpt = text[:EXCERPT_CHARS]
    try:
        reply.body = response.json()
    except ValueError:
        reply.body = None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number (Shopify sends "2.0") or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _read_graphql(reply: Reply) -> None:
    body = reply.body
    if not isinstance(body, dict):
        return
    errors = body.get("errors")
    if isinstance(errors, list):
        reply.errors = [error for error in errors if isinstance(error, dict)]
        reply.error_codes = [
            str((error.get("extensions") or {}).get("code") or "") for error in reply.errors if error.get("extensions")
        ]
    cost = (body.get("extensions") or {}).get("cost") or {}
    reply.requested_cost = _number(cost.get("requestedQueryCost"))
    reply.actual_cost = _number(cost.get("actualQueryCost"))
    status = cost.get("throttleStatus") or {}
    reply.bucket_available = _float(status.get("currentlyAvailable"))
    reply.bucket_maximum = _float(status.get("maximumAvailable"))
    reply.restore_rate = _float(status.get("restoreRate"))


def _number(value) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _float(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass
class Pages:
    """Every node of a paginated GraphQL connection, or as many as came back before a failure."""

    nodes: list[dict]
    reply: Reply  # the last answer: the failing one when `complete` is False
    complete: bool
    pages: int


def graphql_nodes(
    client: AdminClient, document: str, connection: str, variables: dict | None = None, *, max_pages: int = 50
) -> Pages:
    """Read a whole connection page by page (a read: not an OutboundCall). `document` takes
    `$after: String` and selects `nodes` and `pageInfo { hasNextPage endCursor }` on the top-level
    field `connection`. Stops at the first answer without that connection (HTTP error, GraphQL
    errors, THROTTLED: see `reply`), or after `max_pages` pages, with `complete` False."""
    nodes: list[dict] = []
    after = None
    for number in range(1, max_pages + 1):
        reply = client.graphql(document, {**(variables or {}), "after": after})
        page = reply.data.get(connection)
        if reply.transport_error or reply.http_status != 200 or reply.errors or not isinstance(page, dict):
            return Pages(nodes, reply, complete=False, pages=number)
        nodes.extend(node for node in page.get("nodes") or [] if isinstance(node, dict))
        info = page.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return Pages(nodes, reply, complete=True, pages=number)
        after = info.get("endCursor")
    return Pages(nodes, reply, complete=False, pages=max_pages)
