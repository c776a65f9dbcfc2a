"""The simulator's own HTTP/1.1 handler: keep-alive, chunked bodies, 100-continue, bad requests."""

import json
import socket

from tests.simulator.helpers import DOMAIN, TOKEN


def _exchange(sim, raw: bytes, reads: int = 1) -> bytes:
    host, port = sim.server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if data.count(b"HTTP/1.1 ") >= reads and _complete(data, reads):
                return data


def _complete(data: bytes, reads: int) -> bool:
    responses = data.split(b"HTTP/1.1 ")[1:]
    if len(responses) < reads:
        return False
    last = b"HTTP/1.1 " + responses[-1]
    head, sep, body = last.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return len(body) >= length


def _graphql_request(body: bytes, *extra: str, chunked: bool = False) -> bytes:
    lines = [
        f"POST /{DOMAIN}/admin/api/2026-10/graphql.json HTTP/1.1",
        "Host: simulator",
        f"X-Shopify-Access-Token: {TOKEN}",
        "Content-Type: application/json",
        *extra,
    ]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def test_two_requests_on_one_kept_alive_connection(sim, api):
    api.create_shop()
    body = json.dumps({"query": "{ shop { name } }"}).encode()
    data = _exchange(sim, _graphql_request(body) + _graphql_request(body, "Connection: close"), reads=2)
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and second.startswith(b"200 OK")
    assert b"Connection: close" not in first
    assert b"Connection: close" in second
    assert data.count(b'"shop":{"name":"Test Shop"}') == 2


def test_chunked_body_and_expect_continue(sim, api):
    api.create_shop()
    body = json.dumps({"query": "{ shop { myshopifyDomain } }"}).encode()
    chunked = _exchange(sim, _graphql_request(body, chunked=True))
    assert chunked.startswith(b"HTTP/1.1 200 OK")
    assert f'"myshopifyDomain":"{DOMAIN}"'.encode() in chunked
    continued = _exchange(sim, _graphql_request(body, "Expect: 100-continue"), reads=2)
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_malformed_requests_get_400_and_the_connection_closes(sim):
    assert _exchange(sim, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    bad_length = b"POST /_simulator/reset HTTP/1.1\r\nContent-Length: nope\r\n\r\n"
    response = _exchange(sim, bad_length)
    assert response.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Connection: close" in response
