"""The job registry: which jobs each topic runs, and each job's replay decision, in code.

Every job is registered with `@job(name, decision=..., scopes=..., effect=..., writes=...)`:
- `scopes`: the access scopes the job needs (to read the records its topic carries, or to write
  what it pushes), checked against what Shopify granted by `integrations.shops.scopes`.
- `decision`: executable. `decision(event, job) -> Decision(run, reason)` says whether running
  the job again for this event is safe right now, and why, in words support can read.
  `always(reason)`, `never(reason)` and `conditional(reason, predicate)` build one; a job cannot be
  registered without. `integrations.replay` enforces them before anything runs.
- `effect`: what the job writes and the database key that makes it write once, in words.
- `writes`: the data it writes, as (where, resource, field) with where "platform" (our copy) or
  "shopify" (a call through the outbound queue); the runbook looks up who owns each.
- `refetchable`: a replay may run it on the record refetched from Shopify (sync jobs: the current
  record is newer than what we hold, so running again adds something).
- `intended_calls(event, payload) -> [idempotency key]`: the outbound calls a run would enqueue,
  so a dry run can count the calls a replay makes (pushing jobs only).
- `supersedable`: a newer processed event for the same record that ran the job makes replaying
  an older one pointless (True for syncs and pushes; False where every event is its own request,
  like a privacy request).
The runbook page (`integrations.replay.runbook`) is generated from all of this.

`TOPIC_JOBS` names the jobs each topic runs. To handle a new topic, add a line (and a job, if none
fits).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from integrations.models import Event, Job


class RetryableJobError(Exception):
    """A failure that may pass on a later attempt (a dependency was briefly unavailable)."""


class Replay(StrEnum):
    ALWAYS = "always"
    CONDITIONAL = "conditional"
    NEVER = "never"


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


@dataclass(frozen=True)
class ReplayDecision:
    """A job's declared replay safety: its kind, the reason in words, and the predicate."""

    kind: Replay
    reason: str
    predicate: Callable[[Event, Job | None], Decision]

    def __call__(self, event: Event, job: Job | None = None) -> Decision:
        return self.predicate(event, job)


def always(reason: str) -> ReplayDecision:
    return ReplayDecision(Replay.ALWAYS, reason, lambda event, job: Decision(True, reason))


def never(reason: str) -> ReplayDecision:
    return ReplayDecision(Replay.NEVER, reason, lambda event, job: Decision(False, reason))


def conditional(reason: str, predicate: Callable[[Event, Job | None], Decision]) -> ReplayDecision:
    return ReplayDecision(Replay.CONDITIONAL, reason, predicate)


@dataclass(frozen=True)
class JobType:
    name: str
    run: Callable[[Event, dict], str]
    decision: ReplayDecision
    description: str
    scopes: tuple[str, ...] = ()
    effect: str = ""
    writes: tuple[tuple[str, str, str], ...] = ()
    refetchable: bool = False
    intended_calls: Callable[[Event, dict], list[str]] | None = None
    supersedable: bool = True

    @property
    def replay(self) -> Replay:
        return self.decision.kind

    @property
    def replay_reason(self) -> str:
        return self.decision.reason


JOB_TYPES: dict[str, JobType] = {}


def job(
    name: str,
    *,
    decision: ReplayDecision,
    scopes: tuple[str, ...] = (),
    effect: str = "",
    writes: tuple[tuple[str, str, str], ...] = (),
    refetchable: bool = False,
    intended_calls: Callable[[Event, dict], list[str]] | None = None,
    supersedable: bool = True,
) -> Callable:
    if not isinstance(decision, ReplayDecision):
        raise TypeError(f"job {name!r} needs a replay decision: always(...), never(...) or conditional(...)")
    if not effect:
        raise TypeError(f"job {name!r} must say what it writes and what keeps it from writing twice (effect=...)")

    def register(func: Callable[[Event, dict], str]) -> Callable[[Event, dict], str]:
        JOB_TYPES[name] = JobType(
            name=name,
            run=func,
            decision=decision,
            description=(func.__doc__ or "").strip(),
            scopes=tuple(scopes),
            effect=effect,
            writes=tuple(writes),
            refetchable=refetchable,
            intended_calls=intended_calls,
            supersedable=supersedable,
        )
        return func

    return register


TOPIC_JOBS: dict[str, tuple[str, ...]] = {
    "orders/create": ("sync_order",),
    "orders/updated": ("sync_order", "tag_notified_order"),
    "orders/paid": ("sync_order", "notify_fulfillment", "tag_notified_order", "tag_buyer"),
    "fulfillments/create": ("email_shipping_confirmation",),
    "products/create": ("sync_product",),
    "products/update": ("sync_product",),
    "inventory_levels/update": ("sync_inventory_level",),
    "inventory_levels/connect": ("sync_inventory_level",),
    "customers/create": ("sync_customer",),
    "customers/update": ("sync_customer",),
    "app/uninstalled": ("mark_uninstalled",),
    "customers/data_request": ("export_customer_data",),
    "customers/redact": ("redact_customer",),
    "shop/redact": ("redact_shop",),
}

# Importing the job modules registers their jobs.
from integrations.jobs import lifecycle, messages, privacy, pushes, sync  # noqa: E402, F401
