"""Severity from business impact, not technical novelty.

Support answers six questions; `assess` turns them into SEV1 to SEV4 with the reasoning in words.
The rules, first match wins (thresholds in settings: INCIDENT_WIDESPREAD_RECORDS,
INCIDENT_WIDESPREAD_SHOPS):

SEV1  orders are blocked and there is no workaround;
      or money or stock is wrong, customers can see it, and it is widespread;
      or orders are delayed, fulfilment timing is affected, and it is widespread with no workaround.
SEV2  orders are blocked (a workaround exists);
      or orders are delayed and fulfilment timing is affected;
      or money or stock is wrong;
      or customers can see it.
SEV3  orders are delayed (fulfilment not affected, customers cannot see it);
      or it is widespread behind the scenes.
SEV4  none of that: cosmetic or internal (a duplicate log line).

A duplicate low-value log entry is SEV4; a failed order sync that delays fulfilment is SEV2, and
SEV1 when it is widespread and nothing works around it.
"""

from dataclasses import asdict, dataclass, fields
from decimal import Decimal

from django.conf import settings

ORDERS_BLOCKED = "blocked"
ORDERS_DELAYED = "delayed"
ORDERS_FINE = "no"
ORDER_CHOICES = [
    (ORDERS_BLOCKED, "Blocked: orders cannot be placed, synced or shipped"),
    (ORDERS_DELAYED, "Delayed: orders go through late"),
    (ORDERS_FINE, "No: orders are not affected"),
]


def _yes(value, name: str) -> bool:
    """A yes/no answer from JSON, a form or a command: "false" and "off" are no, not a true string."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("", "0", "false", "no", "off", "n"):
        return False
    raise ValueError(f"{name} must be yes or no, not {value!r}")


@dataclass
class Answers:
    orders: str = ORDERS_FINE  # blocked | delayed | no
    fulfilment_affected: bool = False
    money_or_stock_wrong: bool = False
    customer_visible: bool = False
    records: int = 0
    shops: int = 0
    workaround: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> "Answers":
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in (data or {}).items() if key in known}
        answers = cls(**values)
        if answers.orders not in (ORDERS_BLOCKED, ORDERS_DELAYED, ORDERS_FINE):
            raise ValueError(f"orders must be blocked, delayed or no, not {answers.orders!r}")
        answers.records, answers.shops = max(0, int(answers.records)), max(0, int(answers.shops))
        for name in ("fulfilment_affected", "money_or_stock_wrong", "customer_visible", "workaround"):
            setattr(answers, name, _yes(getattr(answers, name), name))
        return answers

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Assessment:
    severity: str
    reasons: list[str]

    @property
    def reasoning(self) -> str:
        return " ".join(self.reasons)


def widespread(answers: Answers) -> bool:
    return (
        answers.records >= settings.INCIDENT_WIDESPREAD_RECORDS or answers.shops >= settings.INCIDENT_WIDESPREAD_SHOPS
    )


def _scale(answers: Answers) -> str:
    return (
        f"{answers.records} record{'s' if answers.records != 1 else ''} in "
        f"{answers.shops} shop{'s' if answers.shops != 1 else ''}"
    )


def assess(answers: Answers) -> Assessment:
    """The severity the answers give, with each reason that decided it."""
    wide = widespread(answers)
    scale = f"{_scale(answers)} ({'widespread' if wide else 'contained in scope'})"
    work = "there is a workaround" if answers.workaround else "there is no workaround"
    blocked, delayed = answers.orders == ORDERS_BLOCKED, answers.orders == ORDERS_DELAYED

    if blocked and not answers.workaround:
        return Assessment("sev1", [f"Orders are blocked and {work}.", f"Scope: {scale}.", "SEV1: act now."])
    if answers.money_or_stock_wrong and answers.customer_visible and wide:
        return Assessment(
            "sev1",
            ["Money or stock is wrong, customers can see it, and it is widespread.", f"Scope: {scale}.", "SEV1."],
        )
    if delayed and answers.fulfilment_affected and wide and not answers.workaround:
        return Assessment(
            "sev1",
            [
                "Orders are delayed and fulfilment timing is affected, widely, with no workaround.",
                f"Scope: {scale}.",
                "SEV1.",
            ],
        )
    if blocked:
        return Assessment("sev2", [f"Orders are blocked but {work}.", f"Scope: {scale}.", "SEV2."])
    if delayed and answers.fulfilment_affected:
        return Assessment(
            "sev2", ["Orders are delayed and fulfilment timing is affected.", f"Scope: {scale}; {work}.", "SEV2."]
        )
    if answers.money_or_stock_wrong:
        seen = "customers can see it" if answers.customer_visible else "customers cannot see it yet"
        return Assessment("sev2", [f"Money or stock is wrong ({seen}).", f"Scope: {scale}.", "SEV2."])
    if answers.customer_visible:
        return Assessment("sev2", ["Customers can see the problem.", f"Scope: {scale}; {work}.", "SEV2."])
    if delayed:
        return Assessment(
            "sev3",
            [
                "Orders are delayed, but fulfilment timing is not affected and customers cannot see it.",
                f"Scope: {scale}.",
                "SEV3.",
            ],
        )
    if wide:
        return Assessment(
            "sev3",
            ["Nothing customers can notice, but it is widespread behind the scenes.", f"Scope: {scale}.", "SEV3."],
        )
    return Assessment(
        "sev4",
        [
            "No orders, fulfilment, money or stock affected and nothing customers can see.",
            f"Scope: {scale}.",
            "SEV4: cosmetic or internal.",
        ],
    )


@dataclass
class Measured:
    """What the linked data says, to prefill the rubric."""

    orders_unsynced: int = 0
    orders_unfulfilled: int = 0
    money_at_risk: dict[str, Decimal] | None = None  # per currency
    customers: int = 0
    shops: int = 0
    records: int = 0
    failed_events: int = 0
    failed_calls: int = 0

    def money_text(self) -> str:
        if not self.money_at_risk:
            return "none measured"
        return ", ".join(
            f"{amount:,.2f} {currency or ''}".strip() for currency, amount in sorted(self.money_at_risk.items())
        )

    def suggested_answers(self) -> Answers:
        """What the data suggests; support confirms or changes each answer."""
        return Answers(
            orders=ORDERS_DELAYED if self.orders_unsynced else ORDERS_FINE,
            fulfilment_affected=bool(self.orders_unfulfilled),
            money_or_stock_wrong=False,
            customer_visible=False,
            records=self.records,
            shops=self.shops,
            workaround=False,
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["money_at_risk"] = {k: str(v) for k, v in (self.money_at_risk or {}).items()}
        return data
