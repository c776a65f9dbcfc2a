"""Saved views: named event-log filters a user keeps."""

from django.db import IntegrityError, transaction

from integrations.models import SavedView


def save_view(*, user, name: str, query: str) -> SavedView:
    """Keep the filter `query` under `name` for `user`; saving an existing name replaces its filter."""
    name = name.strip()[:80]
    try:
        with transaction.atomic():
            view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query[:1000]})
    except IntegrityError:
        # The same user saved the same name twice at once: the other request's row stands.
        view = SavedView.objects.get(user=user, name=name)
    return view


def delete_view(*, user, view_id: int) -> bool:
    """Delete one of `user`'s saved views. False when it is not theirs or already gone."""
    deleted, _ = SavedView.objects.filter(pk=view_id, user=user).delete()
    return bool(deleted)
