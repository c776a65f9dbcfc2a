"""Helpers for simulator tests: a recording webhook receiver, HTTP shortcuts, and an HMAC check
written independently of the simulator's signing code."""

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

TOKEN = "shpat_test_token"
SECRET = "test-webhook-secret"
DOMAIN = "test-shop.myshopify.com"


def independent_hmac_ok(raw_body: bytes, header_value: str, secret: str) -> bool:
    """Shopify's documented check: Base64(HMAC-SHA256(secret, raw body)), constant-time compare."""
    if not raw_body or not header_value:
        return False
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), header_value.strip())


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]  # names as sent
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Receiver:
    """A webhook endpoint on an ephemeral port that records every POST and answers with the
    next queued status (or `default_status`), optionally after `delay` seconds."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        self.default_status = 200
        self.delay = 0.0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append(Received(time.time(), self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.popleft() if receiver.statuses else receiver.default_status
                    receiver._cond.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = b"ok"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # the simulator hung up on a slow answer: that is the point of the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/shopify"

    def wait_for(self, count: int, timeout: float = 5.0, topic: str | None = None) -> list[Received]:
        """Block until `count` deliveries (of `topic`, if given) arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [r for r in self.received if topic is None or r.header("X-Shopify-Topic") == topic]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} deliveries, got {len(matching)}: {[r.header('X-Shopify-Topic') for r in self.received]}"
                    )
                self._cond.wait(remaining)

    def of(self, topic: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.header("X-Shopify-Topic") == topic]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Api:
    """HTTP shortcuts against a running simulator."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = requests.Session()

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, f"{self.base}/_simulator{path}", timeout=10, **kwargs)

    def create_shop(self, domain: str = DOMAIN, **settings) -> dict:
        body = {"domain": domain, "token": TOKEN, "webhook_secret": SECRET, "records": 30, "seed": 1, **settings}
        response = self.control("POST", "/shops", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def graphql(
        self,
        query: str,
        variables: dict | None = None,
        *,
        domain: str = DOMAIN,
        version: str = "2026-10",
        token: str = TOKEN,
    ) -> requests.Response:
        return self.http.post(
            f"{self.base}/{domain}/admin/api/{version}/graphql.json",
            json={"query": query, "variables": variables or {}},
            headers={"X-Shopify-Access-Token": token},
            timeout=10,
        )

    def rest(
        self,
        method: str,
        resource: str,
        *,
        domain: str = DOMAIN,
        version: str = "2026-10",
        token: str = TOKEN,
        **kwargs,
    ) -> requests.Response:
        return self.http.request(
            method,
            f"{self.base}/{domain}/admin/api/{version}/{resource}",
            headers={"X-Shopify-Access-Token": token},
            timeout=10,
            **kwargs,
        )

    def records(self, kind: str, domain: str = DOMAIN, limit: int = 1000) -> list[dict]:
        return self.control("GET", f"/shops/{domain}/records/{kind}", params={"limit": limit}).json()["items"]

    def deliveries(self, domain: str = DOMAIN, **params) -> list[dict]:
        return self.control("GET", f"/shops/{domain}/deliveries", params=params).json()["deliveries"]

    def fault(self, kind: str, domain: str = DOMAIN, **settings) -> dict:
        response = self.control("POST", f"/shops/{domain}/faults", json={"kind": kind, **settings})
        assert response.status_code == 201, response.text
        return response.json()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll until `predicate()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
