"""Server-side role checks. Hiding a button is never the check: every view that shows or changes
something protected starts with one of these."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied


def require_perm(*perms: str) -> Callable:
    """403 unless the (already logged-in, via LoginRequiredMiddleware) user has every permission."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.has_perms(perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.required_perms = perms
        return wrapper

    return decorator
