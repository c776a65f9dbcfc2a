"""Request ids for the logs, and nothing a signed-in person sees kept by a browser or proxy cache.

`RequestIdMiddleware` gives every request an id: the caller's `X-Request-ID` when it is a sane one
(a load balancer or proxy that sets it ties its own logs to ours), else a new one. It is bound to
every log line of the request (`console.logcontext`) and sent back in the response's `X-Request-ID`.

`NoStoreForSignedInMiddleware`: nothing a signed-in person sees is kept by a browser or proxy cache.

Pages, htmx partials and exports carry customer data and secrets' last digits; after a logout the
back button or a shared machine's cache must not show them. Static files never reach this
middleware (whitenoise answers them first, with long-lived caching), and the webhook receiver and
/healthz and /readyz are left alone: nobody is signed in there.
"""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

from console.logcontext import bind

EXEMPT_VIEWS = frozenset({"webhook_receiver", "healthz", "readyz", "metrics"})

# What an incoming X-Request-ID may be: short, and nothing a log line or header could trip on.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}", re.ASCII)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        with bind(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class NoStoreForSignedInMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = request.resolver_match
        if match is not None and match.view_name in EXEMPT_VIEWS:
            return response
        if "no-store" in response.get("Cache-Control", ""):
            return response  # the view already said so (an export, never_cache)
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or _is_download(response):
            # Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private (and Expires).
            add_never_cache_headers(response)
        return response


def _is_download(response: HttpResponseBase) -> bool:
    return response.get("Content-Disposition", "").startswith("attachment") or response.get(
        "Content-Type", ""
    ).startswith("text/csv")
