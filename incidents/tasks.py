"""django-q2 entry points for incidents (their dotted paths are stored in the task queue; keep them)."""

from incidents import notifications, services


def send_notification(notification_id: int) -> str:
    return notifications.send(notification_id)


def incidents_minute() -> dict:
    """Every minute: send notifications no worker picked up, and remind monitored waits that are due."""
    return {"sent": notifications.send_due(), "reminded": services.remind_due_watches()}
