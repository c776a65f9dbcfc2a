"""Webhook signing and delivery with Shopify's headers, timeouts and retry schedule.

One delivery is one topic for one subscription. Its first attempt goes out at once (unless a
fault delays it); a non-2xx answer (3xx included, redirects are not followed), a timeout or a
connection error schedules a retry after `RETRY_DELAYS[n] * time_scale` seconds, re-sending the
original bytes with the same `X-Shopify-Webhook-Id`. After the last retry fails the delivery is
`failed` and the `on_exhausted` callback decides what happens to the subscription.
"""

import base64
import hashlib
import heapq
import hmac
import http.client
import itertools
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

# Shopify: "8 retries over 4 hours, exponential backoff"; the intervals are not published.
# Our assumption: doubling from one minute, the last one shortened so the retries end at 4 h
# (60+120+240+480+960+1920+3840+6780 = 14400 s).
RETRY_DELAYS: tuple[float, ...] = (60, 120, 240, 480, 960, 1920, 3840, 6780)
CONNECT_TIMEOUT = 1.0  # Shopify: accept the connection within 1 s
TOTAL_TIMEOUT = 5.0  # Shopify: the whole request within 5 s
USER_AGENT = "Shopify-Captain-Hook"
_UIDS = itertools.count(1)  # delivery numbers for the control interface (next() is atomic in CPython)


def next_uid() -> int:
    """A fresh delivery number."""
    return next(_UIDS)


def sign(body: bytes, secret: str) -> str:
    """Base64 HMAC-SHA256 of the exact body bytes, keyed by the secret's UTF-8 bytes."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def triggered_at(ts: float) -> str:
    """`X-Shopify-Triggered-At` form: UTC with nanosecond digits, e.g. `2024-08-07T22:57:57.290670000Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclass
class Attempt:
    """One HTTP try of a delivery and its outcome."""

    number: int  # 1 = first try, 2.. = retries
    scheduled_at: float  # epoch seconds the attempt was due
    started_at: float
    finished_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    ok: bool

    def describe(self) -> dict:
        """JSON-able view."""
        return {
            "number": self.number,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": round(self.duration_ms, 3),
            "status_code": self.status_code,
            "error": self.error,
            "ok": self.ok,
        }


@dataclass
class Delivery:
    """One topic for one address: fixed body and webhook id, retried until it succeeds or gives up."""

    shop_domain: str
    topic: str
    address: str
    api_version: str
    body: bytes
    secret: str
    event_id: str
    triggered_at: str
    subscription_id: str | None
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str | None = None
    uid: int = field(default_factory=lambda: next(_UIDS))
    wrong_signature: bool = False
    copy_of: int | None = None  # uid of the original when this is an injected duplicate
    faults: list[str] = field(default_factory=list)
    status: str = "pending"  # pending, delivered, failed, dropped, cancelled
    attempts: list[Attempt] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    next_attempt_at: float | None = None

    def headers(self) -> dict[str, str]:
        """The headers of every attempt of this delivery (signature included)."""
        secret = self.secret + "-not-the-app-secret" if self.wrong_signature else self.secret
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip",
            "X-Shopify-Topic": self.topic,
            "X-Shopify-Hmac-Sha256": sign(self.body, secret),
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": self.webhook_id,
            "X-Shopify-Triggered-At": self.triggered_at,
            "X-Shopify-Event-Id": self.event_id,
        }
        if self.name:
            headers["X-Shopify-Name"] = self.name
        return headers

    def describe(self, with_body: bool = False) -> dict:
        """JSON-able view with every attempt (and the body when asked)."""
        data = {
            "uid": self.uid,
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "topic": self.topic,
            "shop_domain": self.shop_domain,
            "address": self.address,
            "api_version": self.api_version,
            "subscription_id": self.subscription_id,
            "triggered_at": self.triggered_at,
            "status": self.status,
            "faults": list(self.faults),
            "wrong_signature": self.wrong_signature,
            "copy_of": self.copy_of,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "attempts": [a.describe() for a in self.attempts],
        }
        if with_body:
            data["body"] = self.body.decode("utf-8")
        return data


class WebhookSender:
    """Sends deliveries from a heap of due times on a small thread pool, retrying failures.

    `time_scale` multiplies the retry schedule (0.001 turns 4 hours into 14.4 s). Timeouts are
    given separately because they bound one HTTP exchange, not the schedule.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        workers: int = 4,
        on_exhausted: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.time_scale = time_scale
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.retry_delays = retry_delays
        self.on_exhausted = on_exhausted
        self._heap: list[tuple[float, int, object]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._local = threading.local()
        self._thread = threading.Thread(target=self._run, name="webhook-scheduler", daemon=True)
        self._thread.start()

    def retry_schedule(self) -> list[float]:
        """Seconds between consecutive attempts, after scaling."""
        return [d * self.time_scale for d in self.retry_delays]

    def submit(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Queue the first attempt `delay` seconds from now."""
        self._push(time.time() + max(0.0, delay), delivery)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` on the scheduler's pool after `delay` seconds (fault windows, shop/redact)."""
        self._push(time.time() + max(0.0, delay), fn)

    def _push(self, due: float, item: object) -> None:
        if isinstance(item, Delivery):
            item.next_attempt_at = due
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), item))
            self._cond.notify()

    def pending(self) -> int:
        """Items still waiting in the schedule."""
        with self._cond:
            return len(self._heap)

    def stop(self, wait: bool = False) -> None:
        """Stop sending; queued items are abandoned. With `wait`, attempts already on the wire finish first."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.time()):
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - time.time())
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                due, _, item = heapq.heappop(self._heap)
            try:
                if isinstance(item, Delivery):
                    self._pool.submit(self._attempt, item, due)
                else:
                    self._pool.submit(item)
            except RuntimeError:  # pool shut down while stopping
                return

    def _attempt(self, delivery: Delivery, due: float) -> None:
        if delivery.status != "pending":
            return  # cancelled while waiting
        started = time.time()
        status, error = self._post(delivery)
        finished = time.time()
        ok = status is not None and 200 <= status < 300
        delivery.attempts.append(
            Attempt(len(delivery.attempts) + 1, due, started, finished, (finished - started) * 1000, status, error, ok)
        )
        if ok:
            delivery.status = "delivered"
            delivery.next_attempt_at = None
            return
        retries_done = len(delivery.attempts) - 1
        if retries_done < len(self.retry_delays) and delivery.status == "pending":
            # Like Shopify, the wait counts from the failed attempt, not from when it was due.
            self._push(finished + self.retry_delays[retries_done] * self.time_scale, delivery)
            return
        delivery.status = "failed" if delivery.status == "pending" else delivery.status
        delivery.next_attempt_at = None
        if self.on_exhausted:
            self.on_exhausted(delivery)

    def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        """One HTTP POST within the connect and total timeouts: (status, error)."""
        parts = urlsplit(delivery.address)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.hostname, parts.port)
        headers = delivery.headers()
        deadline = time.monotonic() + self.total_timeout
        for reuse in (True, False):
            conn = self._connection(key) if reuse else None
            fresh = conn is None
            try:
                if conn is None:
                    conn = self._connect(key)
                conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
                conn.request("POST", path, body=delivery.body, headers=headers)
                response = conn.getresponse()
                response.read()
                if time.monotonic() > deadline:
                    raise TimeoutError("response exceeded the total timeout")
                if response.will_close:
                    conn.close()
                    self._forget(key)
                else:
                    self._local.conns[key] = conn
                return response.status, None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._forget(key, conn)
                if fresh:
                    return None, f"connection error: {exc.__class__.__name__}"
                # A kept-alive connection the receiver had closed: try once on a new one.
            except TimeoutError:
                self._forget(key, conn)
                return None, "timeout"
            except OSError as exc:
                self._forget(key, conn)
                return None, f"connection error: {exc.__class__.__name__}: {exc}"
            except http.client.HTTPException as exc:
                self._forget(key, conn)
                return None, f"protocol error: {exc.__class__.__name__}"
        return None, "connection error"

    def _connection(self, key: tuple) -> http.client.HTTPConnection | None:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns.pop(key, None)

    def _connect(self, key: tuple) -> http.client.HTTPConnection:
        scheme, host, port = key
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = cls(host, port, timeout=self.connect_timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _forget(self, key: tuple, conn: http.client.HTTPConnection | None = None) -> None:
        if conn is not None:
            conn.close()
        conns = getattr(self._local, "conns", None)
        if conns is not None:
            stale = conns.pop(key, None)
            if stale is not None and stale is not conn:
                stale.close()
