"""`GET /metrics`: the Prometheus figures (`console.metrics`), for the monitoring system only.

No login (Prometheus has none), so it is guarded by what settings configure: METRICS_TOKEN (the
scraper sends `Authorization: Bearer <token>`) and/or METRICS_ALLOWED_IPS (addresses or networks
the request must come from, as `console.clientip` reads it). Each one configured must pass; with
neither configured nobody is let in. A refusal carries no figures, and nothing is ever cached.
"""

import functools
import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from console import metrics
from console.clientip import client_ip


@login_not_required
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(metrics.scrape_registry()), content_type=content_type)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token, networks = settings.METRICS_TOKEN, _networks(tuple(settings.METRICS_ALLOWED_IPS))
    if not token and not networks:
        return _refuse(403, "metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_IPS")
    if networks and not _address_allowed(client_ip(request), networks):
        return _refuse(403, "not allowed from this address")
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            response = _refuse(401, "a bearer token is needed")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


@functools.cache
def _networks(entries: tuple[str, ...]) -> tuple:
    # Validated by settings; strict=False takes "10.0.0.7/24" as its network.
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address_allowed(address: str | None, networks: tuple) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)


def _refuse(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
