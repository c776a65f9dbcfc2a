"""The job registry: which jobs each topic runs, and each job's declared replay safety.

`TOPIC_JOBS` names the jobs each topic runs; each job is registered with `@job` and its replay
safety, declared in code with the reason in plain words. To handle a new topic, add a line to
TOPIC_JOBS (and a job, if none fits).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from integrations.models import Event


class RetryableJobError(Exception):
    """A failure that may pass on a later attempt (a dependency was briefly unavailable)."""


class Replay(StrEnum):
    ALWAYS = "always"
    CONDITIONAL = "conditional"
    NEVER = "never"


@dataclass(frozen=True)
class JobType:
    name: str
    run: Callable[[Event, dict], str]
    replay: Replay
    replay_reason: str
    description: str


JOB_TYPES: dict[str, JobType] = {}


def job(name: str, *, replay: Replay, reason: str) -> Callable:
    def register(func: Callable[[Event, dict], str]) -> Callable[[Event, dict], str]:
        JOB_TYPES[name] = JobType(
            name=name, run=func, replay=replay, replay_reason=reason, description=(func.__doc__ or "").strip()
        )
        return func

    return register


TOPIC_JOBS: dict[str, tuple[str, ...]] = {
    "orders/create": ("sync_order",),
    "orders/updated": ("sync_order",),
    "orders/paid": ("sync_order", "notify_fulfillment"),
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
from integrations.jobs import lifecycle, privacy, sync  # noqa: E402, F401
