"""Notifications: each audience's list for the incident's severity, resolved into recipients and
recorded; sent by e-mail on the worker (inline in tests) to bcc; customer service's mail carries
only public text; an empty list or a failing mail backend is recorded and shown, never swallowed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import notifications, services
from incidents.models import Audience, Incident, IncidentStep, Notification, NotificationList
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

N = Notification
DELAYED_FULFILMENT = {"orders": "delayed", "fulfilment_affected": True}  # sev2
BLOCKED = {"orders": "blocked"}  # sev1
FAILING = "tests.incidents.mail_backends.FailingBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"

ENGINEERING_SEV2 = ["eng.one@example.com", "oncall@example.com", "pager@example.com"]
CS_SEV2 = ["cs-team@example.com"]
FULFILMENT_SEV2 = ["warehouse@example.com"]
OPERATIONS_SEV2 = ["olga@example.com"]


def make_list(audience: str, severity: str, *, users=(), emails: str = "") -> NotificationList:
    one = NotificationList.objects.create(audience=audience, severity=severity, emails=emails)
    one.users.set(users)
    return one


@pytest.fixture
def lists(db):
    engineer = UserFactory(username="eng1", email="Eng.One@Example.com")
    gone = UserFactory(username="gone", email="gone@example.com", is_active=False)
    no_mail = UserFactory(username="nomail", email="")
    olga = UserFactory(username="olga", email="olga@example.com")
    return {
        "engineering": make_list(
            Audience.ENGINEERING,
            "sev2",
            users=[engineer, gone, no_mail],
            emails="oncall@example.com,\npager@example.com",
        ),
        "customer_service": make_list(Audience.CUSTOMER_SERVICE, "sev2", emails="cs-team@example.com"),
        "fulfilment": make_list(Audience.FULFILMENT, "sev2", emails="Warehouse@example.com"),
        "operations": make_list(Audience.OPERATIONS, "sev2", users=[olga]),
        "engineering_sev1": make_list(Audience.ENGINEERING, "sev1", emails="cto@example.com"),
    }


def open_sev2(by, **fields) -> Incident:
    incident = services.open_incident(title="ERP order sync failing", by=by, answers=DELAYED_FULFILMENT, **fields)
    assert incident.severity == "sev2"
    return incident


def by_audience(incident: Incident, kind: str) -> dict[str, Notification]:
    return {n.audience: n for n in incident.notifications.filter(kind=kind)}


# --- lists ---------------------------------------------------------------------------------


def test_a_list_has_its_active_users_with_an_address_and_its_plain_addresses(lists):
    assert lists["engineering"].addresses() == ENGINEERING_SEV2
    assert lists["fulfilment"].addresses() == FULFILMENT_SEV2
    assert notifications.recipients(Audience.ENGINEERING, "sev2") == ENGINEERING_SEV2
    assert notifications.recipients(Audience.ENGINEERING, "sev1") == ["cto@example.com"]
    assert notifications.recipients(Audience.CUSTOMER_SERVICE, "sev1") == []


def test_plain_addresses_are_parsed_and_bad_ones_refused_when_strict():
    assert notifications.parse_addresses("b@example.com; A@Example.com\n\nb@example.com") == [
        "a@example.com",
        "b@example.com",
    ]
    assert notifications.parse_addresses("a@example.com not-an-address") == ["a@example.com"]
    with pytest.raises(notifications.AddressError, match="not an e-mail address: not-an-address"):
        notifications.parse_addresses("a@example.com not-an-address", strict=True)


# --- who is told what -------------------------------------------------------------------------


def test_opening_notifies_every_audience_list_for_its_severity_and_records_recipients(lists, support_user, mailoutbox):
    incident = open_sev2(support_user)
    sent = by_audience(incident, N.Kind.OPENED)
    assert {a: n.recipients for a, n in sent.items()} == {
        "engineering": ENGINEERING_SEV2,
        "customer_service": CS_SEV2,
        "fulfilment": FULFILMENT_SEV2,
        "operations": OPERATIONS_SEV2,
    }
    assert {n.status for n in sent.values()} == {N.Status.SENT}
    assert all(n.sent_at is not None and n.error == "" for n in sent.values())
    # The sev1 list is not used for a sev2 incident.
    assert not any("cto@example.com" in n.recipients for n in incident.notifications.all())
    # The mail really went, to bcc only, one message per audience.
    assert sorted(tuple(m.bcc) for m in mailoutbox) == sorted(
        tuple(r) for r in (ENGINEERING_SEV2, CS_SEV2, FULFILMENT_SEV2, OPERATIONS_SEV2)
    )
    assert all(m.to == [] and m.cc == [] for m in mailoutbox)
    engineering_mail = next(m for m in mailoutbox if m.bcc == ENGINEERING_SEV2)
    assert engineering_mail.subject == f"[integrations] SEV2 #{incident.pk} ERP order sync failing: opened"
    steps = list(incident.steps.filter(kind=IncidentStep.Kind.NOTIFICATION).values_list("text", flat=True))
    assert "Sent “Incident opened” to Engineering and support: " + ", ".join(ENGINEERING_SEV2) in steps
    assert len(steps) == 4


def test_a_severity_change_uses_the_lists_of_the_new_severity(lists, support_user, mailoutbox):
    incident = open_sev2(support_user)
    mailoutbox.clear()
    services.set_severity(incident, by=support_user, answers=BLOCKED)
    changed = by_audience(incident, N.Kind.SEVERITY)
    assert changed["engineering"].recipients == ["cto@example.com"]
    assert changed["engineering"].status == N.Status.SENT
    assert "severity now SEV1" in changed["engineering"].subject
    for audience in ("customer_service", "fulfilment", "operations"):
        assert changed[audience].status == N.Status.NO_RECIPIENTS and changed[audience].recipients == []
    assert [m.bcc for m in mailoutbox] == [["cto@example.com"]]
    # Answering again without a change of severity tells nobody.
    services.set_severity(incident, by=support_user, answers={**BLOCKED, "records": 3})
    assert incident.notifications.filter(kind=N.Kind.SEVERITY).count() == 4


def test_a_confirmed_update_notifies_only_its_audience(lists, support_user, mailoutbox):
    incident = open_sev2(support_user)
    mailoutbox.clear()
    update = services.post_update(
        incident, body="Pick lists are delayed by an hour.", audience="fulfilment", by=support_user, confirmed=True
    )
    [notice] = incident.notifications.filter(kind=N.Kind.UPDATE)
    assert (notice.audience, notice.update, notice.recipients, notice.status) == (
        "fulfilment",
        update,
        FULFILMENT_SEV2,
        N.Status.SENT,
    )
    assert [m.bcc for m in mailoutbox] == [FULFILMENT_SEV2]
    assert "Pick lists are delayed by an hour." in mailoutbox[0].body


def test_an_unconfirmed_update_notifies_nobody_until_it_is_confirmed(lists, support_user, admin_user, mailoutbox):
    incident = open_sev2(support_user)
    mailoutbox.clear()
    update = services.post_update(
        incident, body="Possibly the ERP token.", audience="customer_service", by=support_user
    )
    assert not incident.notifications.filter(kind=N.Kind.UPDATE).exists() and mailoutbox == []

    confirmed = services.confirm_update(update, by=admin_user)
    assert confirmed.confirmed and confirmed.confirmed_by == admin_user and confirmed.confirmed_at is not None
    [notice] = incident.notifications.filter(kind=N.Kind.UPDATE)
    assert (notice.audience, notice.recipients, notice.status) == ("customer_service", CS_SEV2, N.Status.SENT)
    assert [m.bcc for m in mailoutbox] == [CS_SEV2]
    with pytest.raises(services.IncidentError, match="already confirmed"):
        services.confirm_update(update, by=admin_user)
    assert incident.notifications.filter(kind=N.Kind.UPDATE).count() == 1


def test_resolving_notifies_every_audience(lists, support_user, mailoutbox):
    incident = open_sev2(support_user)
    mailoutbox.clear()
    services.resolve(incident, by=support_user)
    resolved = by_audience(incident, N.Kind.RESOLVED)
    assert sorted(resolved) == ["customer_service", "engineering", "fulfilment", "operations"]
    assert resolved["operations"].recipients == OPERATIONS_SEV2
    assert len(mailoutbox) == 4 and all(m.subject.endswith(": resolved") for m in mailoutbox)


INTERNAL = {
    "title": "ERP order sync failing",
    "summary": "Token for erp-prod expired; stack trace in Sentry issue 4411.",
}
PUBLIC = {
    "public_title": "Orders reach the warehouse late",
    "customer_impact": "Orders may show as not shipped for a few hours.",
    "customer_advice": "Tell customers their order is safe and will ship.",
    "workaround": "Staff can ship urgent orders by hand.",
}
ENGINEERING_UPDATE = "Root cause: the erp-prod token expired at 03:12; rotating it."
CS_UPDATE = "Orders placed since 9:00 will ship about two hours late."


def test_customer_service_mail_carries_public_text_and_its_update_only(lists, support_user, mailoutbox):
    incident = services.open_incident(
        by=support_user, answers=DELAYED_FULFILMENT, summary=INTERNAL["summary"], title=INTERNAL["title"], **PUBLIC
    )
    services.post_update(incident, body=ENGINEERING_UPDATE, audience="engineering", by=support_user, confirmed=True)
    services.post_update(incident, body=CS_UPDATE, audience="customer_service", by=support_user, confirmed=True)
    incident.refresh_from_db()

    cs_mail = [m for m in mailoutbox if m.bcc == CS_SEV2]
    assert len(cs_mail) == 2  # opened, and the CS update
    update_mail = cs_mail[-1]
    for text in PUBLIC.values():
        assert text in update_mail.body
    assert CS_UPDATE in update_mail.body
    for mail in cs_mail:
        for secret in (INTERNAL["title"], INTERNAL["summary"], ENGINEERING_UPDATE, incident.severity_reasoning):
            assert secret not in mail.body and secret not in mail.subject
        assert f"#{incident.pk}" not in mail.subject
        assert PUBLIC["public_title"] in mail.subject
    # Engineering's mail has the internal detail.
    engineering_mail = [m for m in mailoutbox if m.bcc == ENGINEERING_SEV2]
    assert INTERNAL["summary"] in engineering_mail[0].body and ENGINEERING_UPDATE in engineering_mail[-1].body
    assert CS_UPDATE not in "".join(m.body for m in engineering_mail)


def test_without_a_public_title_customer_service_reads_a_neutral_name(lists, support_user, mailoutbox):
    open_sev2(support_user)
    [cs_mail] = [m for m in mailoutbox if m.bcc == CS_SEV2]
    assert "Integration issue under investigation" in cs_mail.subject
    assert "ERP order sync failing" not in cs_mail.subject + cs_mail.body


# --- failures are recorded ---------------------------------------------------------------------


def test_an_empty_list_is_recorded_with_the_reason(support_user, mailoutbox):
    incident = open_sev2(support_user)
    notices = by_audience(incident, N.Kind.OPENED)
    assert {n.status for n in notices.values()} == {N.Status.NO_RECIPIENTS}
    assert notices["customer_service"].error == "nobody is on the customer service list for SEV2"
    assert notices["engineering"].error == "nobody is on the engineering and support list for SEV2"
    assert mailoutbox == []


def test_a_failing_mail_backend_is_recorded_shown_and_can_be_sent_again(lists, support_user, settings, mailoutbox):
    settings.EMAIL_BACKEND = FAILING
    incident = open_sev2(support_user)
    notices = by_audience(incident, N.Kind.OPENED)
    assert {n.status for n in notices.values()} == {N.Status.FAILED}
    engineering = notices["engineering"]
    assert engineering.error.startswith("SMTPRecipientsRefused: ")
    assert "relay access denied" in engineering.error
    assert engineering.sent_at is None and engineering.recipients == ENGINEERING_SEV2
    failed_steps = list(incident.steps.filter(kind=IncidentStep.Kind.NOTIFICATION).values_list("text", flat=True))
    assert len(failed_steps) == 4
    assert (
        "Could not send “Incident opened” to Engineering and support (3 recipients): SMTPRecipientsRefused: "
        in "\n".join(failed_steps)
    )
    assert all("relay access denied" in text for text in failed_steps)
    assert mailoutbox == []

    # Fixed: send it again, to the recipients as recorded.
    settings.EMAIL_BACKEND = LOCMEM
    assert notifications.send_again(engineering) is True
    engineering.refresh_from_db()
    assert (engineering.status, engineering.error) == (N.Status.SENT, "")
    assert engineering.sent_at is not None
    assert [m.bcc for m in mailoutbox] == [ENGINEERING_SEV2]
    assert notifications.send_again(engineering) is False  # only failed ones go again
    assert len(mailoutbox) == 1
    assert incident.notifications.filter(status=N.Status.FAILED).count() == 3


def queued(incident: Incident, *, age: timedelta = timedelta(0), **fields) -> Notification:
    return Notification.objects.create(
        incident=incident, kind=N.Kind.UPDATE, audience=Audience.ENGINEERING, recipients=["oncall@example.com"],
        subject="s", body="b", created_at=timezone.now() - age, **fields,
    )  # fmt: skip


def test_sending_twice_sends_once(support_user, mailoutbox):
    incident = open_sev2(support_user)
    notice = queued(incident)
    assert notifications.send(notice.pk) == N.Status.SENT
    assert notifications.send(notice.pk) == N.Status.SENT
    assert len(mailoutbox) == 1
    # One claimed by another worker right now is left to it.
    busy = queued(incident, status=N.Status.SENDING, sent_at=timezone.now())
    assert notifications.send(busy.pk) == N.Status.SENDING
    assert len(mailoutbox) == 1
    assert notifications.send(999_999) == "missing"


def test_the_minute_sweep_sends_what_no_worker_picked_up(support_user, mailoutbox):
    incident = open_sev2(support_user)
    forgotten = queued(incident, age=timedelta(seconds=45))
    fresh = queued(incident, age=timedelta(seconds=5))
    half_sent = queued(
        incident, age=timedelta(hours=1), status=N.Status.SENDING, sent_at=timezone.now() - timedelta(minutes=11)
    )
    sending_now = queued(incident, age=timedelta(hours=1), status=N.Status.SENDING, sent_at=timezone.now())

    assert notifications.send_due() == 2
    statuses = dict(Notification.objects.filter(subject="s").values_list("pk", "status"))
    assert statuses == {
        forgotten.pk: N.Status.SENT,
        fresh.pk: N.Status.QUEUED,
        half_sent.pk: N.Status.SENT,
        sending_now.pk: N.Status.SENDING,
    }
    assert len(mailoutbox) == 2
    assert notifications.send_due() == 0


def test_a_due_monitored_wait_reminds_engineering_once(lists, shop, support_user, mailoutbox):
    incident = open_sev2(support_user)
    not_due = open_sev2(support_user)
    mailoutbox.clear()
    services.start_watch(
        incident, by=support_user, topic="orders/create", shop=shop, minutes=30,
        remind_at=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    services.start_watch(not_due, by=support_user, topic="orders/create", remind_at=timezone.now() + timedelta(hours=1))

    assert services.remind_due_watches() == 1
    [reminder] = Notification.objects.filter(kind=N.Kind.REMINDER)
    assert (reminder.incident, reminder.audience, reminder.recipients, reminder.status) == (
        incident,
        "engineering",
        ENGINEERING_SEV2,
        N.Status.SENT,
    )
    assert [m.bcc for m in mailoutbox] == [ENGINEERING_SEV2]
    assert "reminder: the monitored wait is due for a look" in mailoutbox[0].subject
    step = incident.steps.filter(kind=IncidentStep.Kind.REMINDER).get()
    assert step.text.startswith("Monitored wait due: 0 orders/create failures in the last 30 min (steady).")
    incident.refresh_from_db()
    assert incident.watch_reminded_at is not None

    assert services.remind_due_watches() == 0
    assert Notification.objects.filter(kind=N.Kind.REMINDER).count() == 1 and len(mailoutbox) == 1


def test_the_worker_task_runs_both_sweeps(lists, support_user, mailoutbox):
    from incidents import tasks

    incident = open_sev2(support_user)
    queued(incident, age=timedelta(minutes=5))
    services.start_watch(
        incident, by=support_user, topic="orders/create", remind_at=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.incidents_minute() == {"sent": 1, "reminded": 1}
