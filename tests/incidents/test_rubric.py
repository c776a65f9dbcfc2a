"""The business-impact rubric: each class of answers gives the severity the module's docstring
documents, with the reasoning in words; the rubric is prefilled from what the linked data
measures; an override needs a reason; and every severity an incident had is kept."""

from decimal import Decimal

import pytest

from incidents import rubric, services
from incidents.models import Incident, IncidentStep, SeverityChange
from incidents.rubric import Answers, assess
from integrations.models import Event
from tests.factories import ShopFactory
from tests.incidents.conftest import make_order_event

pytestmark = pytest.mark.django_db

WIDE = {"records": 500, "shops": 1}  # above the default INCIDENT_WIDESPREAD_RECORDS (100)
SMALL = {"records": 5, "shops": 1}

# (answers, severity, words that explain the decision), one line per class in rubric.py's docstring.
CLASSES = {
    "blocked, no workaround": ({"orders": "blocked", "workaround": False, **SMALL}, "sev1", ["blocked", "no workaround"]),
    "blocked, workaround": ({"orders": "blocked", "workaround": True, **SMALL}, "sev2", ["blocked", "there is a workaround"]),
    "delayed, fulfilment": (
        {"orders": "delayed", "fulfilment_affected": True, **SMALL}, "sev2", ["delayed", "fulfilment timing is affected"]
    ),
    "delayed, fulfilment, widespread, no workaround": (
        {"orders": "delayed", "fulfilment_affected": True, **WIDE}, "sev1",
        ["fulfilment timing is affected", "widely", "no workaround", "(widespread)"],
    ),
    "delayed, fulfilment, widespread, workaround": (
        {"orders": "delayed", "fulfilment_affected": True, "workaround": True, **WIDE}, "sev2",
        ["fulfilment timing is affected", "there is a workaround"],
    ),
    "money or stock wrong": ({"money_or_stock_wrong": True, **SMALL}, "sev2", ["Money or stock is wrong", "cannot see it yet"]),
    "money wrong, visible, not widespread": (
        {"money_or_stock_wrong": True, "customer_visible": True, **SMALL}, "sev2",
        ["Money or stock is wrong", "customers can see it", "contained in scope"],
    ),
    "money wrong, visible, widespread": (
        {"money_or_stock_wrong": True, "customer_visible": True, **WIDE}, "sev1",
        ["Money or stock is wrong", "customers can see it", "widespread"],
    ),
    "customer visible only": ({"customer_visible": True, **SMALL}, "sev2", ["Customers can see the problem"]),
    "delayed only": ({"orders": "delayed", **SMALL}, "sev3", ["delayed", "fulfilment timing is not affected"]),
    "widespread behind the scenes": ({**WIDE}, "sev3", ["widespread behind the scenes", "500 records in 1 shop"]),
    "nothing": ({}, "sev4", ["cosmetic or internal", "0 records in 0 shops"]),
    "a duplicate log line": ({"records": 1, "shops": 1}, "sev4", ["nothing customers can see", "1 record in 1 shop"]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_class_of_answers_gives_the_documented_severity_with_its_reasons(name):
    answers, severity, words = CLASSES[name]
    result = assess(Answers.from_dict(answers))
    assert result.severity == severity
    assert result.reasoning.startswith(result.reasons[0]) and len(result.reasons) == 3
    for word in words:
        assert word.lower() in result.reasoning.lower(), (word, result.reasoning)
    assert result.reasons[-1].startswith(severity.upper())


def test_the_docstring_documents_the_severities_the_tests_check():
    doc = rubric.__doc__
    assert "A duplicate low-value log entry is SEV4" in doc
    assert "a failed order sync that delays fulfilment is SEV2" in doc
    assert "SEV1 when it is widespread and nothing works around it" in doc
    # The two examples of the docstring, assessed:
    duplicate_log = assess(Answers(records=1, shops=1))
    failed_sync = assess(Answers(orders="delayed", fulfilment_affected=True, records=3, shops=1))
    widespread_sync = assess(Answers(orders="delayed", fulfilment_affected=True, records=3, shops=9))
    assert (duplicate_log.severity, failed_sync.severity, widespread_sync.severity) == ("sev4", "sev2", "sev1")


@pytest.mark.parametrize(
    ("records", "shops", "severity", "scope"),
    [
        (10, 1, "sev3", "10 records in 1 shop (widespread)"),
        (9, 1, "sev4", "9 records in 1 shop (contained in scope)"),
        (1, 4, "sev3", "1 record in 4 shops (widespread)"),
        (1, 3, "sev4", "1 record in 3 shops (contained in scope)"),
    ],
)
def test_widespread_starts_at_the_thresholds_in_settings(settings, records, shops, severity, scope):
    settings.INCIDENT_WIDESPREAD_RECORDS = 10
    settings.INCIDENT_WIDESPREAD_SHOPS = 4
    result = assess(Answers(records=records, shops=shops))
    assert result.severity == severity
    assert f"Scope: {scope}." in result.reasons


def test_the_threshold_moves_a_widespread_delay_to_sev1(settings):
    answers = Answers(orders="delayed", fulfilment_affected=True, records=50, shops=1)
    settings.INCIDENT_WIDESPREAD_RECORDS = 50
    assert assess(answers).severity == "sev1"
    settings.INCIDENT_WIDESPREAD_RECORDS = 51
    assert assess(answers).severity == "sev2"


def test_answers_from_a_dict_refuse_a_bad_orders_value_and_clean_the_counts():
    with pytest.raises(ValueError, match="orders must be blocked, delayed or no, not 'stuck'"):
        Answers.from_dict({"orders": "stuck"})
    answers = Answers.from_dict({"orders": "delayed", "records": "-4", "shops": "7", "not_a_question": True})
    assert answers.as_dict() == {
        "orders": "delayed",
        "fulfilment_affected": False,
        "money_or_stock_wrong": False,
        "customer_visible": False,
        "records": 0,
        "shops": 7,
        "workaround": False,
    }
    assert Answers.from_dict(None) == Answers()


def test_yes_no_answers_from_a_form_or_json_text_are_read_as_yes_or_no():
    # A form posts "on"/"", JSON may carry "false": "false" must not count as a yes.
    answers = Answers.from_dict({"orders": "blocked", "workaround": "false", "customer_visible": "on"})
    assert (answers.workaround, answers.customer_visible) == (False, True)
    assert assess(answers).severity == "sev1"
    with pytest.raises(ValueError, match="workaround must be yes or no, not 'perhaps'"):
        Answers.from_dict({"workaround": "perhaps"})


# --- the prefill from linked data ---------------------------------------------------------------


@pytest.fixture
def linked(shop):
    """Orders in two shops and two currencies: four failing (one already fulfilled), one processed."""
    other = ShopFactory(domain="south-shop.myshopify.com")
    return [
        make_order_event(shop, 1001, total="100.00", currency="EUR", email="Ana@Example.com"),
        make_order_event(shop, 1002, total="50.50", currency="EUR", email="ana@example.com"),
        make_order_event(other, 1003, total="20.00", currency="USD"),
        make_order_event(shop, 1004, total="10.00", currency="EUR", fulfilled=True),
        make_order_event(shop, 1005, total="999.00", currency="EUR", status=Event.Status.PROCESSED),
    ]


def test_measuring_links_and_an_incident_gives_orders_money_per_currency_customers_and_shops(linked, support_user):
    ids = [event.pk for event in linked]
    before = services.measure_links(ids, [])
    incident = services.open_incident(title="Orders not syncing", by=support_user, event_ids=ids)
    after = services.measure(incident)
    for measured in (before, after):
        assert measured.orders_unsynced == 4  # the processed order is not stuck
        assert measured.orders_unfulfilled == 3  # #1004 is fulfilled already
        assert measured.money_at_risk == {"EUR": Decimal("160.50"), "USD": Decimal("20.00")}
        assert measured.money_text() == "160.50 EUR, 20.00 USD"
        assert measured.customers == 4  # ana (two orders, once), buyer1003, buyer1004, buyer1005
        assert measured.shops == 2
        assert measured.records == 5
        assert measured.failed_events == 4
    assert after.as_dict()["money_at_risk"] == {"EUR": "160.50", "USD": "20.00"}


def test_opening_without_answers_uses_what_the_data_suggests(linked, support_user):
    ids = [event.pk for event in linked]
    incident = services.open_incident(title="Orders not syncing", by=support_user, event_ids=ids)
    assert incident.rubric == {
        "orders": "delayed",
        "fulfilment_affected": True,
        "money_or_stock_wrong": False,
        "customer_visible": False,
        "records": 5,
        "shops": 2,
        "workaround": False,
    }
    assert incident.severity == "sev2" and not incident.severity_overridden
    assert "Orders are delayed and fulfilment timing is affected." in incident.severity_reasoning
    assert "5 records in 2 shops" in incident.severity_reasoning
    [change] = incident.severity_changes.all()
    assert (change.source, change.target, change.rubric_severity, change.overridden) == ("", "sev2", "sev2", False)
    opened = incident.steps.get(kind=IncidentStep.Kind.OPENED)
    assert opened.text.startswith("Opened as SEV2 (inbound); 5 events, 2 shops.")


def test_nothing_linked_suggests_sev4(support_user):
    incident = services.open_incident(title="A duplicate log line", by=support_user)
    assert incident.severity == "sev4"
    assert "cosmetic or internal" in incident.severity_reasoning


def test_opening_with_answers_uses_them(linked, support_user):
    incident = services.open_incident(
        title="Checkout broken", by=support_user, event_ids=[linked[0].pk],
        answers={"orders": "blocked", "workaround": False, "records": 3, "shops": 1},
    )  # fmt: skip
    assert incident.severity == "sev1"
    assert incident.rubric["orders"] == "blocked" and incident.rubric["records"] == 3
    assert "Orders are blocked and there is no workaround." in incident.severity_reasoning


def test_bad_answers_open_nothing(support_user):
    with pytest.raises(services.IncidentError, match="The rubric's answers cannot be read: orders must be"):
        services.open_incident(title="x", by=support_user, answers={"orders": "maybe"})
    assert not Incident.objects.exists()


def test_an_override_needs_a_reason_and_is_kept_as_an_overridden_change(linked, support_user):
    ids = [event.pk for event in linked]
    with pytest.raises(services.IncidentError, match="The rubric gives SEV2; choosing SEV1 instead needs a reason"):
        services.open_incident(title="Orders", by=support_user, event_ids=ids, severity="sev1", severity_reason="  ")
    assert not Incident.objects.exists() and not SeverityChange.objects.exists()

    incident = services.open_incident(
        title="Orders", by=support_user, event_ids=ids, severity="sev1", severity_reason="Black Friday traffic"
    )
    assert incident.severity == "sev1" and incident.severity_overridden
    assert incident.severity_reasoning.endswith("Overridden to SEV1: Black Friday traffic")
    [change] = incident.severity_changes.all()
    assert (change.target, change.rubric_severity, change.overridden, change.override_reason) == (
        "sev1",
        "sev2",
        True,
        "Black Friday traffic",
    )
    assert change.by == support_user and change.by_label == "sam-support"

    # Choosing what the rubric gives is not an override (no reason needed).
    same = services.open_incident(title="Orders again", by=support_user, event_ids=ids, severity="sev2")
    assert not same.severity_overridden and not same.severity_changes.get().overridden


def test_an_unknown_override_severity_is_refused(support_user):
    with pytest.raises(services.IncidentError, match="severity must be one of sev1, sev2, sev3, sev4"):
        services.open_incident(title="x", by=support_user, severity="sev0", severity_reason="why not")


def test_every_severity_change_is_kept_in_order(linked, support_user):
    incident = services.open_incident(title="Orders", by=support_user, event_ids=[e.pk for e in linked])
    services.set_severity(incident, by=support_user, answers={"orders": "blocked", "records": 5, "shops": 2})
    services.set_severity(incident, by=support_user, answers={"orders": "blocked", "records": 6, "shops": 2})
    with pytest.raises(services.IncidentError, match="needs a reason"):
        services.set_severity(incident, by=support_user, answers={"orders": "blocked"}, override="sev3")
    incident = services.set_severity(
        incident, by=support_user, answers={"orders": "blocked"}, override="sev3", reason="only a test shop"
    )
    with pytest.raises(services.IncidentError, match="cannot be read"):
        services.set_severity(incident, by=support_user, answers={"orders": "later"})

    changes = list(incident.severity_changes.values_list("source", "target", "rubric_severity", "overridden"))
    assert changes == [
        ("", "sev2", "sev2", False),
        ("sev2", "sev1", "sev1", False),
        ("sev1", "sev1", "sev1", False),
        ("sev1", "sev3", "sev1", True),
    ]
    assert incident.severity == "sev3" and incident.severity_overridden
    assert incident.rubric["orders"] == "blocked"
    steps = list(incident.steps.filter(kind=IncidentStep.Kind.SEVERITY).values_list("source", "target", "text"))
    assert [(s, t) for s, t, _ in steps] == [("sev2", "sev1"), ("sev1", "sev1"), ("sev1", "sev3")]
    assert steps[0][2].startswith("Severity SEV2 → SEV1. Orders are blocked and there is no workaround.")
    assert steps[1][2].startswith("Severity stays SEV1.")
    assert steps[2][2].endswith("Overridden to SEV3: only a test shop")
