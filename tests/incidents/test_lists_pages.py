"""The follow-ups page (open remediation across incidents, resolved ones included) and the
notification lists (a grid of audience by severity that only admins edit, one cell at a time, audited;
a bad address refuses the whole change)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEntry
from incidents import notifications
from incidents.models import Incident, IncidentAction, NotificationList
from tests.factories import IncidentActionFactory, IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "incidents:notification_lists"
REMEDIATION = IncidentAction.Kind.REMEDIATION


# --- Notification lists -------------------------------------------------------------------------


def test_an_admin_edits_one_cell_and_it_is_audited(client_as, admin_user, support_user):
    on_call = UserFactory(username="olive-oncall", email="Olive@Example.com")
    UserFactory(username="gone", email="gone@example.com", is_active=False)
    client = client_as(admin_user)
    form = client.get(reverse(URL), {"audience": "customer_service", "severity": "sev1"}).content.decode()
    assert "Edit the list: Customer service · SEV1" in form and "olive-oncall" in form
    assert ">gone<" not in form  # inactive users are not offered
    response = client.post(
        reverse(URL),
        {"audience": "customer_service", "severity": "sev1", "users": [on_call.pk, support_user.pk],
         "emails": "cs-leads@example.com, Desk@Example.com\nnight@example.com"},
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"].endswith("#list-customer_service-sev1")
    saved = NotificationList.objects.get(audience="customer_service", severity="sev1")
    assert sorted(u.username for u in saved.users.all()) == ["olive-oncall", "sam-support"]
    assert notifications.recipients("customer_service", "sev1") == [
        "cs-leads@example.com", "desk@example.com", "night@example.com", "olive@example.com", "sam-support@example.com",
    ]  # fmt: skip
    assert notifications.recipients("customer_service", "sev2") == []  # one cell only
    entry = AuditEntry.objects.get(verb="incidents.notification_list")
    assert entry.actor == admin_user and entry.target_id == str(saved.pk)
    assert entry.before == {"users": [], "emails": []}
    assert entry.after == {
        "users": ["olive-oncall", "sam-support"],
        "emails": ["cs-leads@example.com", "desk@example.com", "night@example.com"],
    }
    grid = client.get(reverse(URL)).content.decode()
    cell = grid[grid.index('id="list-customer_service-sev1"') :]
    cell = cell[: cell.index("</td>")]
    assert "olive-oncall" in cell and "desk@example.com" in cell
    assert "Saved the list for Customer service · SEV1: 5 recipients." in grid
    # A second edit audits what it replaced.
    client.post(reverse(URL), {"audience": "customer_service", "severity": "sev1", "emails": "only@example.com"})
    latest = AuditEntry.objects.filter(verb="incidents.notification_list").latest("id")
    assert latest.before["users"] == ["olive-oncall", "sam-support"] and latest.after == {
        "users": [],
        "emails": ["only@example.com"],
    }


def test_a_bad_address_is_refused_with_the_reason_and_nothing_is_saved(client_as, admin_user, support_user):
    existing = NotificationList.objects.create(audience="engineering", severity="sev2", emails="eng@example.com")
    existing.users.add(support_user)
    client = client_as(admin_user)
    response = client.post(
        reverse(URL),
        {"audience": "engineering", "severity": "sev2", "users": [], "emails": "ok@example.com\nnot-an-address"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing saved: not an e-mail address: not-an-address." in html
    assert "ok@example.com\nnot-an-address" in html  # what was typed stays in the form to fix
    existing.refresh_from_db()
    assert existing.emails == "eng@example.com" and list(existing.users.all()) == [support_user]
    assert not AuditEntry.objects.filter(verb="incidents.notification_list").exists()


def test_support_reads_the_lists_but_may_not_change_them(client_as, support_user):
    NotificationList.objects.create(audience="fulfilment", severity="sev1", emails="warehouse@example.com")
    client = client_as(support_user)
    html = client.get(reverse(URL), {"audience": "fulfilment", "severity": "sev1"}).content.decode()
    assert "warehouse@example.com" in html and "Only admins change these lists." in html
    assert "Edit the list" not in html and ">Edit<" not in html
    response = client.post(reverse(URL), {"audience": "fulfilment", "severity": "sev1", "emails": "me@example.com"})
    assert response.status_code == 403
    assert NotificationList.objects.get(audience="fulfilment", severity="sev1").emails == "warehouse@example.com"
    assert not AuditEntry.objects.filter(verb="incidents.notification_list").exists()


def test_customer_service_may_not_read_the_lists(client_as, service_user):
    assert client_as(service_user).get(reverse(URL)).status_code == 403


def test_the_grid_costs_a_fixed_number_of_queries(client_as, admin_user, django_assert_max_num_queries):
    people = [UserFactory(username=f"p{n}") for n in range(6)]
    for audience in ("engineering", "customer_service", "fulfilment", "operations"):
        for severity in Incident.Severity.values:
            one = NotificationList.objects.create(
                audience=audience, severity=severity, emails=f"{audience}@example.com"
            )
            one.users.set(people)
    client = client_as(admin_user)
    # Session, user, perms; the cell being edited and its users; the lists and their users; the users offered.
    with django_assert_max_num_queries(10):
        html = client.get(reverse(URL), {"audience": "operations", "severity": "sev4"}).content.decode()
    assert html.count("p5") >= 16 and html.count("operations@example.com") >= 4


# --- Follow-ups ---------------------------------------------------------------------------------


def test_follow_ups_list_open_remediation_across_incidents(client_as, support_user, admin_user):
    resolved = IncidentFactory(
        title="Duplicate refunds", status=Incident.Status.RESOLVED, resolved_at=timezone.now(), opened_by=admin_user
    )
    open_ = IncidentFactory(title="Stock drift", opened_by=admin_user)
    IncidentActionFactory(incident=resolved, kind=REMEDIATION, title="Idempotency key on refunds", owner=support_user,
                          due_at=timezone.now() - timedelta(days=1))  # fmt: skip
    IncidentActionFactory(incident=open_, kind=REMEDIATION, title="Alert on stock drift", owner=admin_user,
                          due_at=timezone.now() + timedelta(days=3))  # fmt: skip
    IncidentActionFactory(incident=open_, kind=REMEDIATION, title="Write a runbook entry")
    IncidentActionFactory(incident=open_, kind=IncidentAction.Kind.CONTAINMENT, title="Pause the queue")
    IncidentActionFactory(incident=open_, kind=REMEDIATION, title="Already done", done=True, done_at=timezone.now())
    client = client_as(support_user)
    html = client.get(reverse("incidents:follow_ups")).content.decode()
    rows = html[html.index("<tbody>") : html.index("</tbody>")]
    assert (
        rows.index("Idempotency key on refunds")
        < rows.index("Alert on stock drift")
        < rows.index("Write a runbook entry")
    )
    assert "Pause the queue" not in rows and "Already done" not in rows
    assert reverse("incidents:detail", args=[resolved.pk]) in rows and "Duplicate refunds" in rows
    assert "(resolved)" in rows
    assert rows.count('class="follow-up overdue"') == 1 and "Overdue" in rows
    assert "nobody" in rows  # the runbook entry has no owner
    mine = client.get(reverse("incidents:follow_ups"), {"mine": "1"}).content.decode()
    mine_rows = mine[mine.index("<tbody>") : mine.index("</tbody>")]
    assert "Idempotency key on refunds" in mine_rows and "Alert on stock drift" not in mine_rows


def test_follow_ups_are_paged_in_a_fixed_number_of_queries(client_as, support_user, django_assert_max_num_queries):
    owners = [UserFactory(username=f"owner{n}") for n in range(5)]
    incidents = [IncidentFactory(opened_by=support_user) for _ in range(5)]
    IncidentAction.objects.bulk_create([
        IncidentAction(incident=incidents[n % 5], kind=REMEDIATION, title=f"Follow-up {n:03d}", owner=owners[n % 5],
                       due_at=timezone.now() + timedelta(hours=n))
        for n in range(120)
    ])  # fmt: skip
    client = client_as(support_user)
    with django_assert_max_num_queries(8):
        html = client.get(reverse("incidents:follow_ups")).content.decode()
    assert html.count('class="follow-up') == 50 and "Follow-ups 1\u201350 of 120" in html
    page3 = client.get(reverse("incidents:follow_ups"), {"page": 3}).content.decode()
    assert page3.count('class="follow-up') == 20 and "Follow-up 119" in page3


def test_customer_service_may_not_read_the_follow_ups(client_as, service_user):
    assert client_as(service_user).get(reverse("incidents:follow_ups")).status_code == 403
