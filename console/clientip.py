"""The address a request came from, for login throttling and the audit trail.

Without proxies it is the connection's address. Behind TRUSTED_PROXY_COUNT reverse proxies that each
append the address they saw to X-Forwarded-For, it is the entry that many places from the right:
the one our own outermost proxy wrote. Entries further left come from the client and are not
trusted (anyone can send an X-Forwarded-For header).
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = _valid(request.META.get("REMOTE_ADDR", ""))
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < proxies:
        return remote  # not through our proxies after all
    return _valid(forwarded[-proxies]) or remote


def _valid(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None
