"""Privacy requests as support reads them."""

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from integrations.models import PrivacyProof, PrivacyRequest

STATES = {
    "": "Any state",
    "overdue": "Overdue (pending past the deadline)",
    PrivacyRequest.State.PENDING: "Pending",
    PrivacyRequest.State.COMPLETED: "Completed",
}


def privacy_requests(*, state: str = "", shop=None) -> QuerySet[PrivacyRequest]:
    """Newest first, with shop and every proof row loaded in two more queries whatever the count."""
    requests = PrivacyRequest.objects.select_related("shop", "event").prefetch_related(
        Prefetch("proofs", queryset=PrivacyProof.objects.order_by("recorded_at", "id"), to_attr="proof_rows")
    )
    if state == "overdue":
        requests = requests.filter(state=PrivacyRequest.State.PENDING, due_at__lt=timezone.now())
    elif state:
        requests = requests.filter(state=state)
    if shop is not None:
        requests = requests.filter(shop=shop)
    return requests


def as_json(request: PrivacyRequest) -> dict:
    proofs = getattr(request, "proof_rows", None) or list(request.proofs.order_by("recorded_at", "id"))
    return {
        "id": request.pk,
        "kind": request.kind,
        "shop": request.shop.domain,
        "customer_id": request.customer_shopify_id,
        "received_at": request.received_at.isoformat(),
        "due_at": request.due_at.isoformat(),
        "state": request.state,
        "overdue": request.overdue,
        "completed_at": request.completed_at.isoformat() if request.completed_at else None,
        "event_id": request.event_id,
        "has_export": request.export is not None,
        "proof": [{"recorded_at": p.recorded_at.isoformat(), "counts": p.counts} for p in proofs],
    }
