"""django-q2 entry points for alerts (their dotted paths are stored in the schedule table; keep them)."""

from console.alerts import services


def evaluate_alerts() -> dict:
    """Every minute (schedule "alerts-evaluate"): run the rules, open, keep and resolve alerts, send the notices due."""
    return services.evaluate()
