"""The simulator application and its HTTP server.

Admin API requests go through one pipeline: shop lookup (404), API version fall-forward (every
response carries `X-Shopify-API-Version` and `X-Request-Id`), API faults (slow, 5xx),
authentication (401), shop state (423 locked, 402 frozen), then the GraphQL cost bucket or the
REST leaky bucket (429 + `Retry-After`), then scopes and the handler.
"""

import logging
import math
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from integrations.simulator.clock import Clock, system_clock
from integrations.simulator.control import PREFIX, Control
from integrations.simulator.graphql_api import bad_request_body, parse_request_body, run_graphql
from integrations.simulator.hub import WebhookHub
from integrations.simulator.responses import REASONS, Request, Response, error_response, json_response
from integrations.simulator.rest_api import handle_rest
from integrations.simulator.store import Shop, ShopConfig, Store
from integrations.simulator.traffic import TrafficGenerator
from integrations.simulator.versions import LATEST_VERSION, resolve_version
from integrations.simulator.webhooks import CONNECT_TIMEOUT, TOTAL_TIMEOUT, WebhookSender

log = logging.getLogger(__name__)


class Simulator:
    """All simulated shops, their webhook sender and the request router."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        clock: Clock = system_clock,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
        sender_workers: int = 4,
    ) -> None:
        self.clock = clock
        self.sender = WebhookSender(
            time_scale=time_scale, connect_timeout=connect_timeout, total_timeout=total_timeout, workers=sender_workers
        )
        self.store = Store(clock=clock, emit=self._emit)
        self.hub = WebhookHub(self.sender, self.store.get)
        self.control = Control(self)
        self._traffic: dict[str, TrafficGenerator] = {}

    def _emit(self, shop: Shop, events: list[tuple[str, dict]]) -> None:
        self.hub.emit(shop, events)

    # --- shops ------------------------------------------------------------------------------

    def create_shop(self, config: ShopConfig) -> Shop:
        """Create or replace a shop; a replaced shop's traffic and pending deliveries stop."""
        domain = config.domain.strip().lower()
        self.stop_traffic(domain)
        self.hub.forget(domain)
        return self.store.create(config)

    def delete_shop(self, domain: str) -> None:
        """Remove a shop with its traffic and pending deliveries."""
        self.stop_traffic(domain)
        self.hub.forget(domain)
        self.store.delete(domain)

    def reset(self) -> None:
        """Forget every shop, delivery and traffic generator (the documented reset)."""
        for domain in list(self._traffic):
            self.stop_traffic(domain)
        self.store.reset()
        self.hub.forget()

    def start_traffic(self, shop: Shop, **options: float) -> TrafficGenerator:
        """Start (or restart) the demo traffic generator on `shop`."""
        self.stop_traffic(shop.domain)
        generator = TrafficGenerator(shop, **options)
        self._traffic[shop.domain] = generator
        generator.start()
        return generator

    def stop_traffic(self, domain: str) -> None:
        """Stop the shop's demo traffic, if any."""
        generator = self._traffic.pop(domain, None)
        if generator is not None:
            generator.stop()

    def traffic_running(self, domain: str) -> bool:
        """Whether demo traffic runs on the shop."""
        generator = self._traffic.get(domain)
        return bool(generator and generator.running)

    def traffic_status(self, domain: str) -> dict:
        """Running flag, step count and recent actions of the shop's demo traffic."""
        generator = self._traffic.get(domain)
        if generator is None:
            return {"running": False}
        return {"running": generator.running, "steps": generator.steps, "recent": list(generator.recent)}

    def close(self) -> None:
        """Stop traffic and the webhook sender."""
        for domain in list(self._traffic):
            self.stop_traffic(domain)
        self.sender.stop()

    # --- requests ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one HTTP request."""
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            return self.control.handle(request)
        parts = request.path.split("/", 3)
        if len(parts) < 4 or parts[2] != "admin":
            return json_response(404, {"errors": "Not Found"})
        return self._admin(request, parts[1].lower(), parts[3])

    def _admin(self, request: Request, domain: str, rest: str) -> Response:
        request_id = str(uuid.uuid4())
        versioned = rest.startswith("api/")
        if versioned:
            requested, _, resource = rest[4:].partition("/")
            version = resolve_version(requested)
        else:
            resource, version = rest, LATEST_VERSION
        headers = [("X-Request-Id", request_id), ("X-Shopify-API-Version", version)]
        shop = self.store.get(domain)
        if shop is None:
            return error_response(404, headers)
        delay = 0.0
        if fault := shop.faults.hit("slow_responses"):
            delay = float(fault.params["seconds"])
        if fault := shop.faults.hit("api_5xx_rate"):
            status = int(fault.rng.choice(list(fault.params["statuses"])))
            if fault.params.get("retry_after") is not None:
                headers.append(("Retry-After", f"{float(fault.params['retry_after']):.1f}"))
            _pause(delay)
            return error_response(status, headers)
        if not versioned and resource == "oauth/access_token":
            return self._token_exchange(shop, request, headers, delay)
        with shop.lock:
            refused = shop.authenticate(request.header("X-Shopify-Access-Token"))
            locked, frozen = shop.locked, shop.frozen
        if refused or locked or frozen:
            _pause(delay)
            return error_response(401 if refused else 423 if locked else 402, headers)
        if versioned and resource == "graphql.json":
            return self._graphql(shop, request, version, request_id, headers, delay)
        _pause(delay)
        with shop.lock:
            limited = self._rest_bucket(shop, headers)
            if limited is not None:
                return limited
            if versioned:
                ctx = {"version": version, "base_url": f"http://{request.host}/{shop.domain}"}
                response = handle_rest(shop, request, resource, ctx)
            elif resource == "oauth/access_scopes.json" and request.method == "GET":
                response = json_response(200, {"access_scopes": [{"handle": h} for h in shop.granted_scopes()]})
            else:
                response = error_response(404)
        response.headers.extend(headers)
        return response

    def _rest_bucket(self, shop: Shop, headers: list[tuple[str, str]]) -> Response | None:
        bucket = shop.rest_bucket
        if not shop.throttling:
            headers.append(("X-Shopify-Shop-Api-Call-Limit", f"1/{bucket.size}"))
            return None
        if shop.faults.hit("throttle_storm"):
            bucket.fill()
        decision = bucket.acquire()
        headers.append(("X-Shopify-Shop-Api-Call-Limit", decision.call_limit_header))
        if decision.allowed:
            return None
        retry_after = math.ceil(round(decision.retry_after, 6) * 10) / 10
        headers.append(("Retry-After", f"{retry_after:.1f}"))
        body = {
            "errors": f"Exceeded {bucket.leak_rate:g} calls per second for api client. "
            "Reduce request rates to resume uninterrupted service."
        }
        return error_response(429, headers, body)

    def _graphql(
        self, shop: Shop, request: Request, version: str, request_id: str, headers: list[tuple[str, str]], delay: float
    ) -> Response:
        if request.method != "POST":
            _pause(delay)
            return error_response(405, headers)
        parsed = parse_request_body(request.body, request.header("Content-Type", "application/json"))
        outcome = bad_request_body() if parsed is None else run_graphql(shop, version, request_id, *parsed, stall=delay)
        if parsed is None:
            _pause(delay)
        if outcome.deprecations:
            headers.append(("X-Shopify-API-Deprecated-Reason", ", ".join(outcome.deprecations)))
        return json_response(outcome.status, outcome.payload, headers)

    def _token_exchange(self, shop: Shop, request: Request, headers: list[tuple[str, str]], delay: float) -> Response:
        """`POST /admin/oauth/access_token` with `grant_type=refresh_token` (expiring offline tokens)."""
        _pause(delay)
        if request.method != "POST":
            return error_response(405, headers)
        if request.header("Content-Type").startswith("application/json"):
            try:
                data = request.json() or {}
            except ValueError:
                data = {}
        else:
            data = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if not isinstance(data, dict):
            data = {}

        def oauth_error(code: str, description: str) -> Response:
            return json_response(400, {"error": code, "error_description": description}, headers)

        if data.get("grant_type") != "refresh_token":
            return oauth_error("unsupported_grant_type", "Only grant_type=refresh_token is simulated.")
        if data.get("client_id") != shop.config.client_id or data.get("client_secret") != shop.config.webhook_secret:
            return oauth_error("invalid_client", "Client authentication failed.")
        with shop.lock:
            issued = shop.refresh(str(data.get("refresh_token") or ""))
        if issued is None:
            return oauth_error("invalid_grant", "The refresh token is invalid, expired or already replaced.")
        return json_response(200, issued, headers)


def _pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


# --- HTTP -------------------------------------------------------------------------------------------


MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 50 * 1024 * 1024


class _Headers(dict):
    """Request headers keyed by lower-cased name; `get` is case-insensitive."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """Header value by any-case name."""
        return dict.get(self, name.lower(), default)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Handler(socketserver.StreamRequestHandler):
    """A small HTTP/1.1 keep-alive handler.

    http.server's handler parses headers with the email package, which costs more than some
    GraphQL reads; this one reads the request line and headers itself and answers with a
    single write.
    """

    disable_nagle_algorithm = True
    timeout = 120  # drop idle keep-alive connections eventually

    def handle(self) -> None:
        """Serve requests on this connection until it closes or idles out."""
        try:
            while self._one_request():
                pass
        except TimeoutError:
            pass

    def _readline(self) -> bytes:
        line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _BadRequest(431)
        return line

    def _one_request(self) -> bool:
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return False
        try:
            if len(line) > MAX_LINE:
                raise _BadRequest(414)
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise _BadRequest(400)
            method, target, version = parts
            headers = self._headers()
            connection = (headers.get("connection") or "").lower()
            keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
            if (headers.get("expect") or "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self._body(headers)
        except _BadRequest as bad:
            self._send(error_response(bad.status), close=True)
            return False
        path, _, query = target.partition("?")
        request = Request(method, unquote(path), query, headers, body, headers.get("host") or "127.0.0.1")
        try:
            response = self.server.simulator.handle(request)  # type: ignore[attr-defined]
        except Exception:
            log.exception("simulator failed on %s %s", method, target)
            response = error_response(500)
        self._send(response, close=not keep_alive)
        return keep_alive

    def _headers(self) -> _Headers:
        headers = _Headers()
        for _ in range(MAX_HEADERS):
            raw = self._readline()
            if raw in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(400)
            headers[name.strip().lower()] = value.strip()
        raise _BadRequest(431)

    def _body(self, headers: _Headers) -> bytes:
        if (headers.get("transfer-encoding") or "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                try:
                    size = int(self._readline().split(b";")[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest(400) from exc
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise _BadRequest(413)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError as exc:
            raise _BadRequest(400) from exc
        if length < 0:
            raise _BadRequest(400)
        if length > MAX_BODY:
            raise _BadRequest(413)
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response, *, close: bool) -> None:
        lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, '')}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append(f"Content-Length: {len(response.body)}")
        if close:
            lines.append("Connection: close")
        # One write per response: headers and body leave in the same segment.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)


class SimulatorHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded HTTP/1.1 keep-alive server for a Simulator."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up mid-response are routine; anything else is logged."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        log.exception("simulator connection from %s failed", client_address)


@dataclass
class RunningServer:
    """A simulator served on a background thread (see `serve_in_thread`)."""

    server: SimulatorHTTPServer
    thread: threading.Thread
    simulator: Simulator

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving and stop the simulator's background threads."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.simulator.close()


def serve_in_thread(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `simulator` on a background thread (port 0 picks a free port)."""
    server = SimulatorHTTPServer((host, port), simulator)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="simulator-http", daemon=True
    )
    thread.start()
    return RunningServer(server, thread, simulator)
