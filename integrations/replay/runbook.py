"""The runbook, generated from the code: what each topic runs, what each job does, whether and
when it is safe to replay, what it writes and who owns that data, the checks every replay makes,
and the containment steps. Nothing here is written per job: a job registered with `@job(...)`
(`integrations.jobs.registry`) appears with everything it declares, and the replay checks are
read from the planner (`integrations.replay.planner`), so the page says what the code does.

Also the data of the handler switches page (`handler_rows`) and what a switch change leaves
behind (`after_switch`): the events held while a handler was disabled and the filter that
selects them for a replay, shared by the page and `manage.py handlers`.
"""

import inspect
import re
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count
from django.urls import reverse

from integrations.jobs import ownership
from integrations.jobs.registry import JOB_TYPES, TOPIC_JOBS, JobType, Replay
from integrations.models import Event, HandlerSwitch, Job, Shop
from integrations.replay import planner
from integrations.replay.selection import FILTER_KEYS
from integrations.replay.switches import held_events, held_filter

KIND_WORDS = {
    Replay.ALWAYS: "Always safe",
    Replay.CONDITIONAL: "Safe while a condition holds",
    Replay.NEVER: "Never replayed",
}
WHERE_WORDS = {
    "platform": "In the platform's database",
    "shopify": "In Shopify, through the outbound queue (one call per intent, found again by its key)",
}
OWN_RECORD = "The platform's own record"
ALL_SHOPS = "all shops"


# --- the runbook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    where: str  # "platform" (our copy) or "shopify" (a call through the outbound queue)
    where_words: str
    resource: str
    field: str  # "" = the whole record
    owner: str  # "shopify", "platform", "shared", another system's name, or "" (the platform's own record)
    owner_words: str
    why: str
    # For a whole record: its fields with another owner by default, as (field, owner words, why).
    exceptions: tuple[tuple[str, str, str], ...] = ()

    @property
    def what(self) -> str:
        name = self.resource.replace("_", " ")
        return f"{name}: {self.field}" if self.field else f"{name} (the whole record)"


@dataclass
class JobPage:
    name: str
    description: str
    kind: str
    kind_words: str
    reason: str
    condition: str  # what a conditional decision checks (its reason), "" otherwise
    condition_doc: str  # the predicate's docstring, if it has one
    scopes: tuple[str, ...]
    effect: str
    writes: tuple[Write, ...]
    refetchable: bool
    supersedable: bool
    pushes_calls: bool
    topics: tuple[str, ...]
    held: int = 0
    failed: int = 0

    @property
    def anchor(self) -> str:
        return f"job-{self.name}"

    @property
    def failed_filter(self) -> str:
        """The replay filter for this job's failed events (the replays page dry-runs it)."""
        return f"job={self.name}&status=failed"


@dataclass(frozen=True)
class TopicLine:
    topic: str
    jobs: tuple[str, ...]  # in the order they run
    missing: tuple[str, ...]  # named in TOPIC_JOBS but not registered (the topic fails on them)

    @property
    def anchor(self) -> str:
        return "topic-" + self.topic.replace("/", "-")


@dataclass(frozen=True)
class Check:
    number: int
    text: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Step:
    slug: str
    title: str
    text: str
    who: str
    links: tuple[Link, ...]


@dataclass
class Runbook:
    topics: list[TopicLine]
    jobs: list[JobPage]
    checks: list[Check]
    checks_otherwise: str
    skip_labels: list[tuple[str, str]]
    steps: list[Step]
    unrouted: list[str] = field(default_factory=list)  # registered jobs no topic runs


def owner_of(resource: str, field_name: str) -> tuple[str, str]:
    """(owner, why) from the ownership defaults: the field's rule, else the resource's, else
    ("", ...) for a record that is the platform's own (not a copy of a Shopify resource)."""
    found = (field_name and ownership.DEFAULTS.get((resource, field_name))) or ownership.DEFAULTS.get((resource, ""))
    if found is None:
        return "", ""
    return found


def owner_words(owner: str) -> str:
    if owner == ownership.SHOPIFY:
        return "Shopify owns it"
    if owner == ownership.PLATFORM:
        return "The platform owns it"
    if owner == ownership.SHARED:
        return "Shared: both add to it, neither overwrites it"
    if not owner:
        return f"{OWN_RECORD}, not a copy of a Shopify resource: only the platform writes it"
    return f"{owner} owns it"


def _write(where: str, resource: str, field_name: str) -> Write:
    owner, why = owner_of(resource, field_name)
    exceptions = ()
    if not field_name:
        exceptions = tuple(
            (name, owner_words(other), other_why)
            for (res, name), (other, other_why) in ownership.DEFAULTS.items()
            if res == resource and name and other != owner
        )
    return Write(
        where=where,
        where_words=WHERE_WORDS.get(where, where),
        resource=resource,
        field=field_name,
        owner=owner,
        owner_words=owner_words(owner),
        why=why,
        exceptions=exceptions,
    )


def _doc(func) -> str:
    if getattr(func, "__name__", "") == "<lambda>":
        return ""
    return inspect.getdoc(func) or ""


def job_page(job_type: JobType, topics: tuple[str, ...]) -> JobPage:
    conditional = job_type.replay == Replay.CONDITIONAL
    return JobPage(
        name=job_type.name,
        description=job_type.description,
        kind=str(job_type.replay),
        kind_words=KIND_WORDS.get(job_type.replay, str(job_type.replay)),
        reason=job_type.replay_reason,
        condition=job_type.replay_reason if conditional else "",
        condition_doc=_doc(job_type.decision.predicate) if conditional else "",
        scopes=job_type.scopes,
        effect=job_type.effect,
        writes=tuple(_write(*entry) for entry in job_type.writes),
        refetchable=job_type.refetchable,
        supersedable=job_type.supersedable,
        pushes_calls=job_type.intended_calls is not None or any(w[0] == "shopify" for w in job_type.writes),
        topics=topics,
    )


_CHECK = re.compile(r"^(\d+)\.\s+(.*)$")


def replay_checks() -> tuple[list[Check], str]:
    """The checks every replay makes, in order, read from the planner's module docstring (the
    numbered list), and the sentence after them. Falls back to the planner's KINDS labels."""
    checks: list[list] = []
    otherwise: list[str] = []
    in_list = False
    for raw in (planner.__doc__ or "").splitlines():
        line = raw.strip()
        match = _CHECK.match(line)
        if match:
            checks.append([int(match.group(1)), match.group(2)])
            in_list = True
        elif in_list and not line:
            break  # the paragraph ends the list
        elif in_list and raw.startswith((" ", "\t")) and not otherwise:
            checks[-1][1] += " " + line
        elif in_list:
            otherwise.append(line)
    if not checks:
        labels = [label for kind, label in planner.KINDS.items() if kind != "run"]
        return [Check(n, label) for n, label in enumerate(labels, 1)], ""
    return [Check(n, _sentence(text)) for n, text in checks], " ".join(otherwise)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(";.")
    return (text[:1].upper() + text[1:] + ".") if text else text


def containment_steps() -> list[Step]:
    return [
        Step(
            "pause",
            "Pause a shop's outbound queue",
            "Holds every call to Shopify for one shop, queued and new ones alike, in place (a call already being "
            "sent finishes): the jobs still run and queue their calls, which wait until the queue is resumed, each "
            "with its idempotency key, so nothing is sent twice. Use it when what we send to a shop is wrong.",
            "Support and admin (pause and resume from the outbound page or the shop's page; "
            "manage.py outbound pause SHOP --reason R).",
            (
                Link("Outbound queues by shop", reverse("outbound:index")),
                Link("Shops", reverse("integrations:shop_list")),
            ),
        ),
        Step(
            "disable",
            "Disable a handler",
            "Stops one job type, for one shop or for every shop: its events are stored and held (the event's "
            "other jobs still run). Once it is enabled again, the held events are listed with a dry run of "
            "their replay.",
            "Support and admin (manage.py handlers disable JOB [--shop DOMAIN] --reason R).",
            (Link("Handler switches", reverse("replays:handlers")),),
        ),
        Step(
            "replay",
            "Replay a verified-safe batch",
            "Pick the events (one webhook, a selection from the event log, or a filter on "
            f"{', '.join(FILTER_KEYS)}), look at the dry run (every job, run or skip, and why, from the checks "
            "below), then run exactly that plan with a reason. A large one waits for an admin's approval.",
            "Support and admin; an admin approves one over the limits (manage.py events replay --filter F --dry-run).",
            (
                Link("Replays (start a dry run by filter)", reverse("replays:list")),
                Link("Event log (find the events)", reverse("events:list")),
            ),
        ),
    ]


def build_runbook(counts: dict[str, dict[str, int]] | None = None) -> Runbook:
    """The runbook from the registry and the planner, with no query. `counts` ({job: {"held": n,
    "failed": n}}, from `job_counts`) adds what is held or failed now."""
    counts = counts or {}
    topics_of: dict[str, list[str]] = defaultdict(list)
    lines = []
    for topic, names in TOPIC_JOBS.items():
        for name in names:
            topics_of[name].append(topic)
        lines.append(
            TopicLine(
                topic,
                tuple(name for name in names if name in JOB_TYPES),
                tuple(name for name in names if name not in JOB_TYPES),
            )
        )
    order = list(dict.fromkeys(name for names in TOPIC_JOBS.values() for name in names if name in JOB_TYPES))
    unrouted = sorted(name for name in JOB_TYPES if name not in topics_of)
    jobs = []
    for name in order + unrouted:
        page = job_page(JOB_TYPES[name], tuple(topics_of.get(name, ())))
        page.held = counts.get(name, {}).get("held", 0)
        page.failed = counts.get(name, {}).get("failed", 0)
        jobs.append(page)
    checks, otherwise = replay_checks()
    return Runbook(
        topics=lines,
        jobs=jobs,
        checks=checks,
        checks_otherwise=otherwise,
        skip_labels=[(kind, label) for kind, label in planner.KINDS.items() if kind != "run"],
        steps=containment_steps(),
        unrouted=unrouted,
    )


def job_counts() -> dict[str, dict[str, int]]:
    """{job: {"held": n, "failed": n}}: jobs held (their handler was disabled) or failed, of
    events in that state now. One grouped query, through the events' status index."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        Job.objects.filter(
            event__status__in=(Event.Status.HELD, Event.Status.FAILED), status__in=(Job.Status.HELD, Job.Status.FAILED)
        )
        .values_list("name", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for name, status, n in rows:
        counts[name][status] = n
    return counts


def topic_prefix(name: str) -> str:
    """The event log's topic filter that covers the job's topics ("orders" for sync_order), or ""."""
    topics = [topic for topic, names in TOPIC_JOBS.items() if name in names]
    if len(topics) == 1:
        return topics[0]
    prefixes = {topic.split("/", 1)[0] for topic in topics}
    return prefixes.pop() if len(prefixes) == 1 else ""


# --- handler switches -------------------------------------------------------------------------


@dataclass
class HeldGroup:
    """Events held for a job in one shop (`shop` None: every shop together)."""

    job: str
    shop: Shop | None
    count: int
    still_disabled: bool

    @property
    def filter(self) -> str:
        return held_filter(self.job, self.shop)

    @property
    def where(self) -> str:
        return self.shop.domain if self.shop else ALL_SHOPS


@dataclass
class HandlerRow:
    job_type: JobType
    kind_words: str
    disabled_all: HandlerSwitch | None = None
    disabled_shops: list[HandlerSwitch] = field(default_factory=list)
    enabled: list[HandlerSwitch] = field(default_factory=list)  # switched on again: kept for the record
    held: list[HeldGroup] = field(default_factory=list)
    topic: str = ""

    @property
    def name(self) -> str:
        return self.job_type.name

    @property
    def held_total(self) -> int:
        return sum(group.count for group in self.held)

    @property
    def ready(self) -> list[HeldGroup]:
        """Held events whose handler is enabled again: ready for a replay."""
        return [group for group in self.held if not group.still_disabled]

    @property
    def ready_all(self) -> HeldGroup | None:
        """Every shop's held events at once, when it runs everywhere again and several shops have some."""
        if len(self.held) > 1 and not self.disabled_all and not self.disabled_shops:
            return HeldGroup(self.name, None, self.held_total, False)
        return None

    @property
    def disabled_anywhere(self) -> bool:
        return bool(self.disabled_all or self.disabled_shops)


def handler_rows() -> tuple[list[HandlerRow], list[Shop]]:
    """Every job type with its switches and its held events per shop, and the shops (for the
    forms). Three queries, whatever the number of jobs, switches and shops."""
    shops = list(Shop.objects.order_by("domain"))
    by_id = {shop.pk: shop for shop in shops}
    rows = {
        name: HandlerRow(JOB_TYPES[name], KIND_WORDS.get(JOB_TYPES[name].replay, ""), topic=topic_prefix(name))
        for name in sorted(JOB_TYPES)
    }
    for switch in HandlerSwitch.objects.order_by("job", "shop_id"):
        row = rows.get(switch.job)
        if row is None:
            continue  # a switch for a job no longer registered: nothing runs it
        switch.shop = by_id.get(switch.shop_id) if switch.shop_id else None
        if not switch.disabled:
            row.enabled.append(switch)
        elif switch.shop_id is None:
            row.disabled_all = switch
        else:
            row.disabled_shops.append(switch)
    held = (
        Job.objects.filter(status=Job.Status.HELD, event__status=Event.Status.HELD)
        .values_list("name", "event__shop_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for name, shop_id, n in held:
        row = rows.get(name)
        shop = by_id.get(shop_id)
        if row is None or shop is None:
            continue
        off = row.disabled_all is not None or any(s.shop_id == shop_id for s in row.disabled_shops)
        row.held.append(HeldGroup(name, shop, n, off))
    for row in rows.values():
        row.disabled_shops.sort(key=lambda s: s.shop.domain if s.shop else "")
        row.held.sort(key=lambda g: g.where)
    # What needs attention first (disabled somewhere, or events held), then the rest, by name.
    ordered = sorted(rows.values(), key=lambda row: (not (row.disabled_anywhere or row.held), row.name))
    return ordered, shops


@dataclass
class SwitchOutcome:
    """What a switch change leaves: for an enable, the events held meanwhile and the replay
    filter that selects them, and where the handler is still disabled."""

    job: str
    shop: Shop | None
    disabled: bool
    was_disabled: bool
    held: int = 0
    filter: str = ""
    still_disabled_for: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.shop.domain if self.shop else ALL_SHOPS

    @property
    def dry_run_command(self) -> str:
        return f'manage.py events replay --filter "{self.filter}" --dry-run' if self.filter else ""

    def as_json(self) -> dict:
        return {
            "job": self.job,
            "shop": self.shop.domain if self.shop else None,
            "disabled": self.disabled,
            "was_disabled": self.was_disabled,
            "held_events": self.held,
            "replay_filter": self.filter,
            "dry_run_command": self.dry_run_command,
            "still_disabled_for": self.still_disabled_for,
        }

    def sentence(self) -> str:
        """In words, for a message or the terminal."""
        if self.disabled:
            return (
                f"Handler {self.job} disabled for {self.where}: its jobs are held (the events' other jobs still "
                "run) until it is enabled again."
            )
        text = f"Handler {self.job} enabled for {self.where}"
        text += "." if self.was_disabled else " (it was not disabled there)."
        if self.still_disabled_for:
            text += f" It is still disabled for {', '.join(self.still_disabled_for)}: enable it there too to run it."
        if self.held == 1:
            text += f" 1 event was held while it was disabled: replay it after a dry run (filter {self.filter})."
        elif self.held:
            text += (
                f" {self.held} events were held while it was disabled: replay them after a dry run "
                f"(filter {self.filter})."
            )
        else:
            text += " No event was held for it."
        return text


def was_disabled(job: str, shop: Shop | None) -> bool:
    return HandlerSwitch.objects.filter(job=job, shop=shop, disabled=True).exists()


def after_switch(job: str, shop: Shop | None, *, disabled: bool, was: bool) -> SwitchOutcome:
    outcome = SwitchOutcome(job, shop, disabled, was)
    if disabled:
        return outcome
    outcome.held = held_events(job, shop).count()
    outcome.filter = held_filter(job, shop) if outcome.held else ""
    others = HandlerSwitch.objects.filter(job=job, disabled=True).select_related("shop")
    if shop is not None:
        others = others.filter(shop__isnull=True)
    outcome.still_disabled_for = sorted(s.shop.domain if s.shop_id else ALL_SHOPS for s in others)
    return outcome
