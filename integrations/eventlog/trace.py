"""The five questions support asks about one webhook, answered from the event log:

received? verified? processed once or N times? which jobs? where did it fail, and is it still failing?

`trace_event` and `trace_webhook` return the same JSON-ready dict, used by the event detail page and
by `manage.py events trace`. Both run a constant number of queries whatever the number of
deliveries or jobs.
"""

from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Prefetch, QuerySet

from integrations.models import Attempt, Delivery, Event, Job, webhook_id_match

# Job states whose last run did not succeed: the event is still failing while one of them remains.
FAILING_JOB_STATES = (Job.Status.FAILED, Job.Status.RETRY_WAIT)


def traced_events() -> QuerySet[Event]:
    """Events with what `trace_event` reads already loaded: shop, jobs in creation order, attempts."""
    jobs = Job.objects.order_by("id").prefetch_related(
        Prefetch("attempts", queryset=Attempt.objects.order_by("number"))
    )
    return Event.objects.select_related("shop").prefetch_related(Prefetch("jobs", queryset=jobs, to_attr="traced_jobs"))


def trace_event(event: Event) -> dict[str, Any]:
    """Answer the five questions for a verified event.

    `failure` is where it fails now or, once recovered, where it last failed (then `still_failing`
    is False). Reads `event.traced_jobs` when the event came from `traced_events()`, otherwise
    loads jobs and attempts (two queries).
    """
    jobs = getattr(event, "traced_jobs", None)
    if jobs is None:
        jobs = list(traced_events().get(pk=event.pk).traced_jobs)
    failing_job = next((job for job in jobs if job.status in FAILING_JOB_STATES), None)
    still_failing = event.status == Event.Status.FAILED or failing_job is not None
    failure = _current_failure(event, jobs, failing_job) if still_failing else _past_failure(jobs)
    return {
        "webhook_id": event.webhook_id,
        "event_id": event.pk,
        "shop": event.shop.domain,
        "topic": event.topic,
        "received": True,
        # An Event only exists for a delivery whose HMAC matched: rejected requests never make one.
        "verified": True,
        "deliveries": event.delivery_count,
        "processed": event.processed_count,
        "status": event.status,
        "jobs": [
            {"name": job.name, "status": job.status, "attempts": job.attempt_count, "error": job.last_error or None}
            for job in jobs
        ],
        "failure": failure,
        "still_failing": still_failing,
        "first_received_at": _iso(event.received_at),
        "last_received_at": _iso(event.last_delivery_at),
    }


def trace_webhook(webhook_id: str, shop_domain: str | None = None) -> dict[str, Any] | None:
    """Trace by Shopify's X-Shopify-Webhook-Id, optionally within one shop.

    The verified Event wins when there is one (newest, if the id appears in several shops). A
    webhook id seen only on rejected requests is reported as received but not verified, with the
    rejection reason as the failure. None when nothing with that id reached us.
    """
    webhook_id = webhook_id.strip()
    if not webhook_id:
        return None
    events = traced_events().filter(webhook_id_match(webhook_id))
    if shop_domain:
        events = events.filter(shop__domain=shop_domain.strip().lower())
    event = events.order_by("-id").first()
    if event is not None:
        return trace_event(event)
    return _trace_rejected(webhook_id, shop_domain)


def _trace_rejected(webhook_id: str, shop_domain: str | None) -> dict[str, Any] | None:
    rejected = Delivery.objects.filter(webhook_id=webhook_id, event__isnull=True)
    if shop_domain:
        rejected = rejected.filter(shop_domain=shop_domain.strip().lower())
    summary = rejected.aggregate(n=Count("id"), first=Min("received_at"), last=Max("received_at"))
    if not summary["n"]:
        return None
    latest = rejected.order_by("-id").values("shop_domain", "topic", "reason", "response_status").first()
    return {
        "webhook_id": webhook_id,
        "event_id": None,
        "shop": latest["shop_domain"] or None,
        "topic": latest["topic"] or None,
        "received": True,
        "verified": False,
        "deliveries": summary["n"],
        "processed": 0,
        "status": "rejected",
        "jobs": [],
        "failure": {
            "stage": "verification",
            "error": latest["reason"] or f"Rejected with HTTP {latest['response_status']}",
            "retryable": False,
        },
        # Nothing with this id was ever accepted, so Shopify's retries are still being refused.
        "still_failing": True,
        "first_received_at": _iso(summary["first"]),
        "last_received_at": _iso(summary["last"]),
    }


def _current_failure(event: Event, jobs: list[Job], failing_job: Job | None) -> dict[str, Any]:
    """Where processing fails now: the payload, the handler, or the first job whose last run failed."""
    if failing_job is None:
        reason = event.status_reason.lower()
        # The worker's status_reason says when the stored body is missing or not a JSON object
        # (processing.runner.parse_payload); a handler's own failure starts with "handler".
        payload_problem = "json" in reason or "parse" in reason or "no stored body" in reason
        if not jobs and payload_problem and not reason.startswith("handler"):
            return {"stage": "parse", "error": event.status_reason, "retryable": False}
        return {"stage": "handler", "error": event.status_reason or "The handler failed.", "retryable": False}
    last_failed = _failed_attempts(failing_job)[-1:] or [None]
    return {
        "stage": f"job:{failing_job.name}",
        "error": failing_job.last_error or _attempt_error(last_failed[0]) or event.status_reason or None,
        # A job waiting to retry is retryable by definition, whatever was recorded.
        "retryable": failing_job.status == Job.Status.RETRY_WAIT or bool(failing_job.retryable),
    }


def _past_failure(jobs: list[Job]) -> dict[str, Any] | None:
    """The most recent failed attempt of a job that has since succeeded, if any."""
    failed = [(attempt, job) for job in jobs for attempt in _failed_attempts(job)]
    if not failed:
        return None
    attempt, job = max(failed, key=lambda pair: (pair[0].started_at, pair[0].pk))
    return {"stage": f"job:{job.name}", "error": _attempt_error(attempt), "retryable": bool(attempt.retryable)}


def _failed_attempts(job: Job) -> list[Attempt]:
    return [attempt for attempt in job.attempts.all() if attempt.outcome == Attempt.Outcome.FAILED]


def _attempt_error(attempt: Attempt | None) -> str | None:
    if attempt is None:
        return None
    return ": ".join(part for part in (attempt.error_class, attempt.message) if part) or "failed"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plain_words(trace: dict[str, Any]) -> list[tuple[str, str]]:
    """The five answers as (question, answer) sentences, for the detail page and the command."""
    n, processed, status = trace["deliveries"], trace["processed"], trace["status"]
    failure = trace["failure"]
    if not trace["verified"]:
        received = f"Yes, {_times(n)}, and every request was rejected."
        verified = f"No: {failure['error']}. A request that fails verification is never processed."
    else:
        duplicates = f" ({n - 1} duplicate{'s' if n > 2 else ''}, never processed again)" if n > 1 else ""
        received = f"Yes, {_times(n)}{duplicates}."
        verified = "Yes: the HMAC signature matched the shop's secret."
    if processed:
        done = f"Yes, {_times(processed)}."
        if status != Event.Status.PROCESSED:
            done += f" Now {status}."
    else:
        done = {
            "queued": "Not yet: waiting in the queue.",
            "claimed": "Not yet: a worker is processing it right now.",
            "retry_wait": "Not yet: a job failed and is waiting for its retry.",
            "failed": "No: processing failed.",
            "ignored": "No: deliberately ignored.",
            "rejected": "No: never accepted, so never processed.",
        }.get(status, f"No ({status}).")
    jobs = trace["jobs"]
    if jobs:
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[job["status"]] = by_status.get(job["status"], 0) + 1
        summary = ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in by_status.items())
        which = f"{len(jobs)} job{'s' if len(jobs) > 1 else ''}: {summary}."
    else:
        which = "None." if status != Event.Status.QUEUED else "None yet."
    if failure is None:
        where = "Nowhere: no failure recorded."
    else:
        retry = "a retry can help" if failure["retryable"] else "retrying will not help"
        where = f"At {failure['stage']}: {failure['error']} ({retry})."
        where += " Still failing." if trace["still_failing"] else " It has recovered since: not failing now."
    return [
        ("Received?", received),
        ("Verified?", verified),
        ("Processed?", done),
        ("Which jobs?", which),
        ("Where did it fail, and is it still failing?", where),
    ]


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"
