"""What each audience may read about incidents. Customer service sees only what the status board
shows: open incidents with a confirmed update written for them, and only those updates, and of
each incident only its public fields (`board_title`, the severity in words, the impact, the
advice, the workaround), never the internal title, summary or severity reasoning."""

from datetime import timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from incidents import affected
from incidents.models import AffectedRecord, Incident, IncidentUpdate, Notification

# The public fields of an incident: all that the board and the lookup load (and so can show).
PUBLIC_FIELDS = (
    "id",
    "public_title",
    "severity",
    "status",
    "opened_at",
    "resolved_at",
    "customer_impact",
    "customer_advice",
    "workaround",
    "next_update_due_at",
)

# An affected record's repair state, in words customer service can repeat to a customer.
REPAIR_WORDS = {
    AffectedRecord.RepairState.WAITING: "Not fixed yet",
    AffectedRecord.RepairState.REPLAYED: "Being fixed",
    AffectedRecord.RepairState.REPAIRED: "Fixed",
    AffectedRecord.RepairState.NEEDS_MANUAL: "Being fixed by hand — check back later",
}


def shared_updates() -> QuerySet[IncidentUpdate]:
    """Updates customer service may read: confirmed, and written for them (body and time only)."""
    return IncidentUpdate.objects.filter(confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE).only(
        "id", "incident_id", "body", "created_at", "next_update_at"
    )


def board_incidents() -> QuerySet[Incident]:
    """Open incidents with something confirmed to tell customer service, each with `shared_updates`
    (newest first). Two queries however many incidents and updates there are."""
    return (
        Incident.objects.filter(status__in=Incident.OPEN)
        .filter(pk__in=shared_updates().values("incident"))
        .only(*PUBLIC_FIELDS)
        .prefetch_related(Prefetch("updates", queryset=shared_updates(), to_attr="shared_updates"))
        .order_by("severity", "-opened_at")
    )


def open_incidents_for(user, limit: int = 5) -> list[Incident]:
    """The dashboard's open incidents: every one for support, the board's for everyone else."""
    if user.has_perm("incidents.view_incident"):
        return list(Incident.objects.filter(status__in=Incident.OPEN).order_by("severity", "-opened_at")[:limit])
    return list(board_incidents()[:limit])


def lookup(text: str) -> list[dict]:
    """Customer service's lookup of an order number or an e-mail: each affected record found (open
    incidents, and those resolved lately) with its incident's public fields, the repair state in
    words and the latest confirmed customer-service update. A fixed number of queries."""
    records = affected.lookup(text)
    if not records:
        return []
    incident_ids = {record.incident_id for record in records}
    latest: dict[int, IncidentUpdate] = {}
    for update in shared_updates().filter(incident_id__in=incident_ids).order_by("-created_at", "-id"):
        latest.setdefault(update.incident_id, update)
    return [
        {
            "incident": record.incident,
            "kind": record.get_kind_display(),
            "key": record.key,
            "shop": record.shop.name or record.shop.domain,
            "repair_state": record.repair_state,
            "repair_words": REPAIR_WORDS[record.repair_state],
            "fixed": record.repair_state == AffectedRecord.RepairState.REPAIRED,
            "latest_update": latest.get(record.incident_id),
        }
        for record in records
    ]


def failed_notifications(hours: int = 24, limit: int = 10) -> tuple[int, list[Notification]]:
    """Notifications that could not be sent lately (support's dashboard): how many, and the newest."""
    failed = Notification.objects.filter(
        status=Notification.Status.FAILED, created_at__gte=timezone.now() - timedelta(hours=hours)
    )
    newest = list(failed.select_related("incident").order_by("-created_at", "-id")[:limit])
    count = len(newest) if len(newest) < limit else failed.count()
    return count, newest
