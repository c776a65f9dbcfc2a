"""What each audience may read about incidents. Customer service sees only what the status board
shows: open incidents with a confirmed update written for them, and only those updates."""

from django.db.models import Prefetch, QuerySet

from incidents.models import Incident, IncidentUpdate


def shared_updates() -> QuerySet[IncidentUpdate]:
    """Updates customer service may read: confirmed, and written for them."""
    return IncidentUpdate.objects.filter(confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE)


def board_incidents() -> QuerySet[Incident]:
    """Open incidents with something confirmed to tell customer service, each with `shared_updates`
    (newest first) and `latest_shared` (the update whose promised next-update time counts)."""
    return (
        Incident.objects.exclude(status=Incident.Status.RESOLVED)
        .filter(pk__in=shared_updates().values("incident"))
        .prefetch_related(Prefetch("updates", queryset=shared_updates(), to_attr="shared_updates"))
        .order_by("severity", "-opened_at")
    )


def open_incidents_for(user, limit: int = 5) -> list[Incident]:
    """The dashboard's open incidents: every one for support, the board's for everyone else."""
    if user.has_perm("incidents.view_incident"):
        return list(
            Incident.objects.exclude(status=Incident.Status.RESOLVED).order_by("severity", "-opened_at")[:limit]
        )
    return list(board_incidents()[:limit])
