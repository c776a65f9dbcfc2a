"""The job registry: which jobs each topic runs, and each job's replay decision, in code.

Every job is registered with `@job(name, decision=..., scopes=...)`; `scopes` names the access
scopes the job needs (to read the records its topic carries, or to write what it pushes), checked
against what Shopify granted by `integrations.shops.scopes`. The decision is executable:
`decision(event, job) -> Decision(run, reason)` says whether running the job again for this event
is safe right now, and why, in words support can read. `always(reason)`, `never(reason)` and
`conditional(reason, predicate)` build one; a job cannot be registered without. The replay issue
enforces these decisions; the runbook page will be generated from them.

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

    @property
    def replay(self) -> Replay:
        return self.decision.kind

    @property
    def replay_reason(self) -> str:
        return self.decision.reason


JOB_TYPES: dict[str, JobType] = {}


def job(name: str, *, decision: ReplayDecision, scopes: tuple[str, ...] = ()) -> Callable:
    if not isinstance(decision, ReplayDecision):
        raise TypeError(f"job {name!r} needs a replay decision: always(...), never(...) or conditional(...)")

    def register(func: Callable[[Event, dict], str]) -> Callable[[Event, dict], str]:
        JOB_TYPES[name] = JobType(
            name=name, run=func, decision=decision, description=(func.__doc__ or "").strip(), scopes=tuple(scopes)
        )
        return func

    return register


TOPIC_JOBS: dict[str, tuple[str, ...]] = {
    "orders/create": ("sync_order",),
    "orders/updated": ("sync_order", "tag_notified_order"),
    "orders/paid": ("sync_order", "notify_fulfillment", "tag_notified_order", "tag_buyer"),
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
from integrations.jobs import lifecycle, privacy, pushes, sync  # noqa: E402, F401
