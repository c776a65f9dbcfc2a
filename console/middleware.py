"""Nothing a signed-in person sees is kept by a browser or proxy cache.

Pages, htmx partials and exports carry customer data and secrets' last digits; after a logout the
back button or a shared machine's cache must not show them. Static files never reach this
middleware (whitenoise answers them first, with long-lived caching), and the webhook receiver and
/healthz are left alone: nobody is signed in there.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

EXEMPT_VIEWS = frozenset({"webhook_receiver", "healthz"})


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
