"""The status workflow: the declared transitions and nothing else, each stamped, on the timeline
and in the audit trail; a lost race is refused; resolving is refused while containment is open
and gated on the data (failed events not replayed or resolved, worksheet rows not applied)
unless overridden with a reason; a reopen clears the resolution."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console.models import AuditEntry
from incidents import services
from incidents.models import Incident, IncidentAction, IncidentStep
from incidents.worksheets.models import Worksheet, WorksheetRow
from integrations.eventlog.triage import resolve_event
from tests.factories import IncidentFactory
from tests.incidents.conftest import make_order_event

pytestmark = pytest.mark.django_db

S = Incident.Status
DECLARED = sorted((source, target) for source, targets in Incident.STATES.transitions.items() for target in targets)
UNDECLARED = sorted((source, target) for source in S.values for target in S.values if (source, target) not in DECLARED)


def at_status(status: str, by) -> Incident:
    resolved_at = timezone.now() - timedelta(hours=1) if status == S.RESOLVED else None
    return IncidentFactory(status=status, resolved_at=resolved_at, opened_by=by)


def audit_verbs(incident: Incident) -> list[str]:
    return list(AuditEntry.objects.for_object(incident).order_by("id").values_list("verb", flat=True))


def test_the_table_declares_the_documented_workflow():
    assert len(DECLARED) == 15 and len(UNDECLARED) == 10
    assert (S.INVESTIGATING, S.IDENTIFIED) in DECLARED and (S.RESOLVED, S.INVESTIGATING) in DECLARED
    assert (S.CONTAINED, S.INVESTIGATING) in UNDECLARED and (S.RESOLVED, S.MONITORING) in UNDECLARED


@pytest.mark.parametrize(("source", "target"), DECLARED)
def test_every_declared_transition_works_and_is_recorded(support_user, source, target):
    incident = at_status(source, support_user)
    before = timezone.now()
    moved = services.change_status(incident, target, by=support_user, note="checked the logs")
    assert moved.status == target
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.status == target
    stamp = Incident.STAMPS.get(target)
    if stamp:
        assert getattr(stored, stamp) >= before
    for other in set(Incident.STAMPS.values()) - {stamp}:
        assert getattr(stored, other) is None
    if target == S.RESOLVED:
        assert stored.resolved_at >= before
    if source == S.RESOLVED:
        assert stored.resolved_at is None
    [step] = stored.steps.filter(kind=IncidentStep.Kind.STATUS)
    assert (step.source, step.target, step.actor, step.actor_label) == (source, target, support_user, "sam-support")
    if target != S.RESOLVED:
        assert step.text == f"{S(source).label} → {S(target).label}: checked the logs"
    assert audit_verbs(incident)[0] == "incident.status"


@pytest.mark.parametrize(("source", "target"), UNDECLARED)
def test_an_undeclared_transition_is_refused_and_changes_nothing(support_user, source, target):
    incident = at_status(source, support_user)
    with pytest.raises(services.IncidentError, match=f"An incident that is {source} cannot become {target}"):
        services.change_status(incident, target, by=support_user)
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.status == source
    assert not stored.steps.exists() and not audit_verbs(incident)
    assert all(getattr(stored, stamp) is None for stamp in Incident.STAMPS.values())


def test_an_unknown_status_is_refused(support_user):
    incident = at_status(S.INVESTIGATING, support_user)
    with pytest.raises(services.IncidentError, match="status must be one of"):
        services.change_status(incident, "closed", by=support_user)


def test_a_lost_race_is_refused_and_does_not_overwrite_the_winner(support_user):
    incident = at_status(S.INVESTIGATING, support_user)
    # Someone else moved it to contained after we read it as investigating.
    Incident.objects.filter(pk=incident.pk).update(status=S.CONTAINED)
    assert incident.status == S.INVESTIGATING
    with pytest.raises(services.IncidentError, match="Someone else changed this incident's status meanwhile"):
        services.change_status(incident, S.IDENTIFIED, by=support_user)
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.status == S.CONTAINED and stored.identified_at is None
    assert not stored.steps.exists() and not audit_verbs(incident)


def test_a_lost_race_to_resolve_is_refused_too(support_user):
    incident = at_status(S.MONITORING, support_user)
    Incident.objects.filter(pk=incident.pk).update(status=S.RESOLVED, resolved_at=timezone.now())
    with pytest.raises(services.IncidentError):
        services.resolve(incident, by=support_user)
    assert not incident.steps.exists() and not incident.notifications.exists()


def test_the_person_needs_the_permission_to_change_status(service_user, support_user):
    from django.core.exceptions import PermissionDenied

    incident = at_status(S.INVESTIGATING, support_user)
    with pytest.raises(PermissionDenied):
        services.change_status(incident, S.IDENTIFIED, by=service_user)
    assert Incident.objects.get(pk=incident.pk).status == S.INVESTIGATING


# --- resolving: containment and the data gate ------------------------------------------------


def test_open_containment_refuses_resolving_even_with_an_override(support_user):
    incident = at_status(S.CONTAINED, support_user)
    pause = services.add_action(incident, kind="containment", title="Pause the outbound queue", by=support_user)
    services.add_action(incident, kind="remediation", title="Add an idempotency key", by=support_user)
    for reason in ("", "we are sure"):
        with pytest.raises(services.ResolveRefused) as refused:
            services.resolve(incident, by=support_user, override_reason=reason)
        assert refused.value.needs_override is False
        assert "1 containment action(s) still open (Pause the outbound queue)" in str(refused.value)
    with pytest.raises(services.ResolveRefused):
        services.change_status(incident, S.RESOLVED, by=support_user, override_reason="really")
    assert Incident.objects.get(pk=incident.pk).status == S.CONTAINED

    services.complete_action(pause, by=support_user)
    # Remediation stays open as a follow-up and does not block.
    resolved = services.resolve(incident, by=support_user)
    assert resolved.status == S.RESOLVED
    assert list(services.follow_ups().values_list("title", flat=True)) == ["Add an idempotency key"]


def test_a_failed_linked_event_gates_resolving_until_resolved_or_overridden(shop, support_user):
    event = make_order_event(shop, 1001)
    incident = services.open_incident(title="Orders", by=support_user, event_ids=[event.pk])
    with pytest.raises(services.ResolveRefused) as refused:
        services.resolve(incident, by=support_user)
    assert refused.value.needs_override is True
    assert "1 linked failed events were neither replayed nor resolved" in str(refused.value)
    assert services.resolve_blockers(incident)["unrepaired_event_ids"] == [event.pk]
    assert Incident.objects.get(pk=incident.pk).status == S.INVESTIGATING

    # Support triaged the event as resolved: the data gate opens.
    assert resolve_event(event=event, by=support_user, note="merchant re-entered the order")
    resolved = services.resolve(incident, by=support_user)
    assert resolved.status == S.RESOLVED and resolved.resolve_override_reason == ""
    assert "incident.resolve_override" not in audit_verbs(incident)


def test_an_override_reason_resolves_past_the_data_gate_and_is_kept(shop, support_user):
    events = [make_order_event(shop, n) for n in (1001, 1002)]
    incident = services.open_incident(title="Orders", by=support_user, event_ids=[e.pk for e in events])
    before = timezone.now()
    resolved = services.resolve(incident, by=support_user, override_reason="  Merchant re-entered them by hand  ")
    assert resolved.status == S.RESOLVED and resolved.resolved_at >= before
    assert resolved.resolve_override_reason == "Merchant re-entered them by hand"
    step = resolved.steps.filter(kind=IncidentStep.Kind.STATUS).get()
    assert step.text == (
        "Resolved. Override (2 linked failed events were neither replayed nor resolved): Merchant re-entered them by hand"
    )
    assert (step.source, step.target) == (S.INVESTIGATING, S.RESOLVED)
    entry = AuditEntry.objects.for_object(incident).get(verb="incident.resolve_override")
    assert entry.reason.strip() == "Merchant re-entered them by hand" and entry.actor == support_user
    assert entry.after == {"gate": "2 linked failed events were neither replayed nor resolved"}
    assert audit_verbs(incident)[-2:] == ["incident.status", "incident.resolve_override"]


def worksheet_for(incident, shop, user, *, result="", proposal=WorksheetRow.Proposal.WRITE_PLATFORM):
    sheet = Worksheet.objects.create(
        shop=shop, resource=Worksheet.Resource.ORDERS, source=Worksheet.Source.INCIDENT, incident=incident,
        prepared_by=user, state=Worksheet.State.APPROVED,
    )  # fmt: skip
    row = WorksheetRow.objects.create(
        worksheet=sheet, position=1, key="gid://shopify/Order/5001001", label="#1001", kind=WorksheetRow.Kind.DIFFERS,
        proposal=proposal, result=result, shopify_values={"name": "#1001"}, platform_values={"name": "#1001"},
    )  # fmt: skip
    return sheet, row


def test_a_linked_worksheet_with_unapplied_rows_gates_resolving(shop, support_user):
    incident = services.open_incident(title="Wrong totals", by=support_user, shops=[shop])
    sheet, row = worksheet_for(incident, shop, support_user)
    with pytest.raises(services.ResolveRefused) as refused:
        services.resolve(incident, by=support_user)
    assert refused.value.needs_override is True
    assert f"1 worksheet rows are not applied (worksheet #{sheet.pk})" in str(refused.value)

    WorksheetRow.objects.filter(pk=row.pk).update(result=WorksheetRow.Result.APPLIED)
    assert services.resolve(incident, by=support_user).status == S.RESOLVED


def test_a_skipped_worksheet_row_does_not_gate(shop, support_user):
    incident = services.open_incident(title="Wrong totals", by=support_user, shops=[shop])
    _sheet, row = worksheet_for(incident, shop, support_user)
    WorksheetRow.objects.filter(pk=row.pk).update(decision=WorksheetRow.Decision.SKIP)
    assert services.resolve_blockers(incident)["unapplied_rows"] == 0
    assert services.resolve(incident, by=support_user).status == S.RESOLVED


def test_resolving_writes_the_timeline_the_audit_and_a_reopen_clears_it(support_user):
    incident = services.open_incident(title="Slow stock updates", by=support_user)
    services.change_status(incident, S.IDENTIFIED, by=support_user)
    services.change_status(incident, S.CONTAINED, by=support_user)
    services.change_status(incident, S.MONITORING, by=support_user)
    resolved = services.change_status(incident, S.RESOLVED, by=support_user)
    assert resolved.resolved_at is not None
    assert resolved.identified_at <= resolved.contained_at <= resolved.monitoring_at <= resolved.resolved_at

    reopened = services.change_status(resolved, S.INVESTIGATING, by=support_user, note="it came back")
    assert reopened.status == S.INVESTIGATING and reopened.resolved_at is None
    assert reopened.resolve_override_reason == ""
    # The earlier stamps are kept on the way back.
    assert reopened.identified_at == resolved.identified_at and reopened.monitoring_at == resolved.monitoring_at

    steps = list(reopened.steps.filter(kind=IncidentStep.Kind.STATUS).values_list("source", "target"))
    assert steps == [
        (S.INVESTIGATING, S.IDENTIFIED),
        (S.IDENTIFIED, S.CONTAINED),
        (S.CONTAINED, S.MONITORING),
        (S.MONITORING, S.RESOLVED),
        (S.RESOLVED, S.INVESTIGATING),
    ]
    assert reopened.steps.order_by("at", "id").last().text == "Resolved → Investigating: it came back"
    assert audit_verbs(incident) == ["incident.open"] + ["incident.status"] * 5


def test_a_reopen_clears_an_override_reason(shop, support_user):
    event = make_order_event(shop, 1001)
    incident = services.open_incident(title="Orders", by=support_user, event_ids=[event.pk])
    services.resolve(incident, by=support_user, override_reason="fixed by hand")
    reopened = services.change_status(incident, S.INVESTIGATING, by=support_user)
    assert reopened.resolve_override_reason == "" and reopened.resolved_at is None
    # Still gated: the event is still failed.
    with pytest.raises(services.ResolveRefused):
        services.resolve(reopened, by=support_user)


def test_completing_an_action_twice_is_refused(support_user):
    incident = at_status(S.INVESTIGATING, support_user)
    action = services.add_action(
        incident, kind=IncidentAction.Kind.CONTAINMENT, title="Disable handler", by=support_user
    )
    services.complete_action(action, by=support_user)
    with pytest.raises(services.IncidentError, match="already done"):
        services.complete_action(action, by=support_user)
    reopened = services.complete_action(action, by=support_user, done=False)
    assert not reopened.done and reopened.done_at is None
