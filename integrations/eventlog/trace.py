"""The five questions support asks about one webhook, answered from the event log:

received? verified? processed once or N times? which jobs? where did it fail, and is it still failing?

`trace_event` and `trace_webhook` return the same JSON-ready dict, used by the event detail page and
by `manage.py events trace`. Both run a constant number of queries whatever the number of
deliveries or jobs.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Prefetch, QuerySet

from console.timefmt import absolute
from integrations.models import Attempt, Delivery, Event, Job, webhook_id_match

# Job states whose last run did not succeed: the event is still failing while one of them remains.
FAILING_JOB_STATES = (Job.Status.FAILED, Job.Status.RETRY_WAIT)

# What a record-writing job reports when it wrote nothing (integrations.jobs.records.Written).
STALE_PREFIX = "stale"
_STALE = re.compile(
    r"^stale: we already hold the version of (?P<ours>\S+), as new as or newer than this event's "
    r"(?P<theirs>\S+); nothing written(?P<rest>.*)$",
    re.S,
)
_VARIANTS = re.compile(r"^; variants: (?P<counts>.+)$", re.S)
_OUTCOME_WORDS = {
    "created": "Created the record: we did not hold it yet.",
    "updated": "Updated the record to this event's version, the newest we have seen.",
    "notified": "Told the fulfillment queue: the order can be picked and shipped.",
}
_VARIANT_WORDS = {"stale": "already up to date", "created": "created", "updated": "updated", "redacted": "redacted"}


@dataclass(frozen=True)
class JobResult:
    """What a successful job run did, in words: "stale" runs wrote nothing because we already held
    a version of the record as new as (`same_version`) or newer than (`out_of_order`) the event's."""

    kind: str  # created | updated | stale | redacted | other
    words: str
    ours: datetime | None = None  # stale: the version we already held (Shopify's updated_at)
    theirs: datetime | None = None  # stale: the version this event carried

    @property
    def did_nothing(self) -> bool:
        return self.kind in ("stale", "redacted", "nothing", "echo")

    @property
    def out_of_order(self) -> bool:
        """The event arrived after a newer change to its record had been written."""
        return self.kind == "stale" and self.ours is not None and self.theirs is not None and self.ours > self.theirs


def describe_result(message: str) -> JobResult:
    """A successful attempt's message (what the job returned) as a JobResult with plain words."""
    message = (message or "").strip()
    match = _STALE.match(message)
    if match:
        ours, theirs = _parse_iso(match["ours"]), _parse_iso(match["theirs"])
        result = JobResult("stale", "", ours, theirs)
        if result.out_of_order:
            words = (
                f"Nothing written: we already hold a newer version of this record (changed at Shopify "
                f"{absolute(ours)}) than the one this event carries ({absolute(theirs)}). The event arrived "
                "out of order, after a later change; skipping it keeps the newest data."
            )
        elif ours is not None and ours == theirs:
            words = (
                f"Nothing written: we already hold this very version of the record (changed at Shopify "
                f"{absolute(ours)}), written by an earlier event about the same change."
            )
        else:
            words = "Nothing written: we already hold a version of the record as new as or newer than this event's."
        return JobResult("stale", words + _variant_words(match["rest"]), ours, theirs)
    if message == STALE_PREFIX:  # written before attempts named both versions
        return JobResult("stale", "Nothing written: we already held a version as new as or newer than this event's.")
    if message.startswith("redacted"):
        return JobResult(
            "redacted",
            "Nothing written: the record's personal data was removed (redacted), so it is never written back.",
        )
    if message.startswith("nothing to push: "):
        why = message.removeprefix("nothing to push: ")
        return JobResult("nothing", f"Nothing sent to Shopify: {why}.")
    if message.startswith("echo of our call "):
        return JobResult(
            "echo",
            "Nothing sent to Shopify: this webhook reports our own "
            + message.removeprefix("echo of ").split(":")[0]
            + " coming back (an echo), and an echo is never written back.",
        )
    head, _, rest = message.partition(";")
    if head in _OUTCOME_WORDS:
        return JobResult(head, _OUTCOME_WORDS[head] + _variant_words(";" + rest if rest else ""))
    return JobResult("other", message[:1].upper() + message[1:])


def _variant_words(rest: str) -> str:
    match = _VARIANTS.match(rest)
    if not match:
        return ""
    parts = []
    for part in match["counts"].split(","):
        count, _, outcome = part.strip().partition(" ")
        parts.append(f"{count} {_VARIANT_WORDS.get(outcome, outcome)}")
    return f" Variants: {', '.join(parts)}."


def _parse_iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def first_result(job: Job) -> JobResult | None:
    """What the job did when the event was first processed (its successful run that was not a
    replay), from `job.attempts` as `traced_events()` loads them."""
    first = next(
        (
            a
            for a in job.attempts.all()
            if a.outcome == Attempt.Outcome.SUCCEEDED and a.trigger != Attempt.Trigger.REPLAY
        ),
        None,
    )
    return describe_result(first.message) if first is not None else None


def latest_result(job: Job) -> JobResult | None:
    """What the job's latest successful run did."""
    succeeded = [a for a in job.attempts.all() if a.outcome == Attempt.Outcome.SUCCEEDED]
    return describe_result(succeeded[-1].message) if succeeded else None


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
    results = {job.pk: latest_result(job) if job.status == Job.Status.SUCCEEDED else None for job in jobs}
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
            {
                "name": job.name,
                "status": job.status,
                "attempts": job.attempt_count,
                "error": job.last_error or None,
                # What its latest successful run did, in words ("Nothing written: ..."), or None.
                "result": (results[job.pk].words or None) if results[job.pk] else None,
                "did_nothing": bool(results[job.pk] and results[job.pk].did_nothing),
            }
            for job in jobs
        ],
        "failure": failure,
        "still_failing": still_failing,
        # When first processed, a newer version of its record was already held.
        "out_of_order": any((first := first_result(job)) is not None and first.out_of_order for job in jobs),
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
        "out_of_order": False,
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
        if trace["jobs"] and all(job["did_nothing"] for job in trace["jobs"]):
            done += " It changed nothing: every job found nothing to write (see which jobs)."
        if trace.get("out_of_order"):
            done += " It arrived out of order: a newer change to the same record had already been written."
    else:
        done = {
            "queued": "Not yet: waiting in the queue.",
            "claimed": "Not yet: a worker is processing it right now.",
            "retry_wait": "Not yet: a job failed and is waiting for its retry.",
            "failed": "No: processing failed.",
            "ignored": "No: deliberately ignored.",
            "held": "Not yet: a handler is disabled for it; its jobs are held until a replay runs them.",
            "rejected": "No: never accepted, so never processed.",
        }.get(status, f"No ({status}).")
    jobs = trace["jobs"]
    if jobs:
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[job["status"]] = by_status.get(job["status"], 0) + 1
        summary = ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in by_status.items())
        which = f"{len(jobs)} job{'s' if len(jobs) > 1 else ''}: {summary}."
        which += "".join(f" {job['name']}: {job['result']}" for job in jobs if job.get("did_nothing"))
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
