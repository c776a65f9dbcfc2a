"""Support's incident pages: the list, opening one (from an event, a filtered set of failing events,
a failing outbound call, or by hand, with the rubric prefilled from what the links measure), and
the detail page with everything support does on an incident: the status workflow and the resolve
gates, the severity (the rubric again, or an override with a reason), the response strategy and
its one-click tools, containment and remediation actions, status updates, notifications, links,
affected records, the timeline, the words, and the Markdown summary.

Views stay thin: every change goes through `incidents.services`, which checks the rules and says in
words why it refuses (IncidentError, shown as a message) and checks each tool's own permission
(PermissionDenied, a 403). The `require_perm` checks here are the first gate; templates only hide
what a role cannot do.
"""

from django.contrib import messages
from django.db.models import Case, Count, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.access import require_perm
from incidents import forms, rubric, services
from incidents.models import (
    AffectedRecord,
    Direction,
    Incident,
    IncidentAction,
    IncidentUpdate,
    Notification,
)
from incidents.services import IncidentError
from integrations.models import Event, OutboundCall, ReplayRequest, Shop

VIEW = "incidents.view_incident"
ADD = "incidents.add_incident"
CHANGE = "incidents.change_incident"
POST_UPDATE = "incidents.add_incidentupdate"
Status = Incident.Status
Strategy = Incident.Strategy

EVENTS_SHOWN = 20
CALLS_SHOWN = 20
AFFECTED_SHOWN = 50
# Records that need someone first: the page shows these before the ones already repaired.
REPAIR_ORDER = ["needs_manual", "waiting", "replayed", "repaired"]
RESOLVED_SHOWN = 20
EVENT_FILTER_KEYS = ("shop", "topic", "status", "since", "until", "job", "held_job")
CALL_FILTER_KEYS = ("shop", "operation", "status", "since", "until")
# Carrying out a response records it as the strategy when none was chosen yet.
RESPONSE_STRATEGY = {
    "replay": Strategy.CONTROLLED_REPLAY,
    "pause": Strategy.QUEUE_PAUSE,
    "disable": Strategy.ROLLBACK,
    "rollback": Strategy.ROLLBACK,
    "worksheet": Strategy.MANUAL_CORRECTION,
    "watch": Strategy.MONITORED_WAIT,
}


def _incident(pk: int) -> Incident:
    return get_object_or_404(Incident.objects.select_related("lead", "opened_by", "watch_shop"), pk=pk)


def _detail(incident: Incident, anchor: str = "") -> HttpResponse:
    url = reverse("incidents:detail", args=[incident.pk])
    return redirect(f"{url}#{anchor}" if anchor else url)


# --- List -------------------------------------------------------------------------------------


@require_GET
@require_perm("incidents.view_status_board")
def incident_list(request: HttpRequest) -> HttpResponse:
    """Support's list of incidents; customer service, who may only read the board, goes there."""
    if not request.user.has_perm(VIEW):
        return redirect("incidents:status_board")
    open_actions = Q(actions__done=False)
    incidents = Incident.objects.select_related("lead", "opened_by").annotate(
        open_containment=Count("actions", filter=open_actions & Q(actions__kind=IncidentAction.Kind.CONTAINMENT)),
        open_remediation=Count("actions", filter=open_actions & Q(actions__kind=IncidentAction.Kind.REMEDIATION)),
    )
    context = {
        "open": list(incidents.filter(status__in=Incident.OPEN).order_by("severity", "-opened_at", "-id")),
        "resolved": list(incidents.filter(status=Status.RESOLVED).order_by("-resolved_at", "-id")[:RESOLVED_SHOWN]),
        "can_open": request.user.has_perm(ADD),
    }
    return render(request, "incidents/list.html", context)


# --- New --------------------------------------------------------------------------------------


def _filter_from_query(query, name: str, keys: tuple[str, ...]) -> str:
    """The filter in `name`; if its own keys came unencoded (?filter=shop=S&topic=T), they are
    taken from the query string too. A "+" a browser turned into a space is put back."""
    text = query.get(name, "").strip()
    if not text:
        return ""
    parts = [text] + [f"{key}={query[key]}" for key in keys if query.get(key) and f"{key}=" not in text]
    return "&".join(part.replace(" ", "+") for part in parts)[:1000]


def _ids_from_query(query, one: str, many: str) -> list[int]:
    raw = [query.get(one, ""), *query.get(many, "").split(",")]
    ids = []
    for value in raw:
        value = value.strip()
        if not value:
            continue
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise Http404(f"{value[:30]!r} is not an id")
        ids.append(int(value))
    return sorted(set(ids))


def _links_from_query(request: HttpRequest) -> dict:
    """What the page that sent us here wants linked: ?event=, ?events=, ?filter=, ?call=, ?calls_filter=.
    Unknown event or call ids are a 404."""
    query = request.GET
    event_ids = _ids_from_query(query, "event", "events")
    call_ids = _ids_from_query(query, "call", "calls")
    if event_ids and Event.objects.filter(pk__in=event_ids).count() != len(event_ids):
        raise Http404("No such event")
    if call_ids and OutboundCall.objects.filter(pk__in=call_ids).count() != len(call_ids):
        raise Http404("No such outbound call")
    events_filter = _filter_from_query(query, "filter", EVENT_FILTER_KEYS if "calls_filter" not in query else ())
    calls_filter = _filter_from_query(query, "calls_filter", CALL_FILTER_KEYS if "filter" not in query else ())
    return {"event_ids": event_ids, "events_filter": events_filter, "call_ids": call_ids, "calls_filter": calls_filter}


def _candidate(*, event_ids, events_filter: str, call_ids, calls_filter: str) -> dict:
    """What the links would be, what they measure, and the errors of filters that cannot be read."""
    errors = []
    event_ids, call_ids = list(event_ids), list(call_ids)
    if events_filter:
        try:
            event_ids = sorted(set(event_ids) | set(services.events_for_filter(events_filter)))
        except IncidentError as error:
            errors.append(str(error))
    if calls_filter:
        try:
            call_ids = sorted(set(call_ids) | set(services.calls_for_filter(calls_filter)))
        except IncidentError as error:
            errors.append(f"The outbound filter cannot be used: {error}")
    measured = services.measure_links(event_ids, call_ids)
    shop_ids = set()
    topics, operations = [], []
    if event_ids:
        events = Event.objects.filter(pk__in=event_ids)
        shop_ids |= set(events.values_list("shop_id", flat=True).distinct())
        topics = sorted(set(events.values_list("topic", flat=True).distinct()[:6]))
    if call_ids:
        calls = OutboundCall.objects.filter(pk__in=call_ids)
        shop_ids |= set(calls.values_list("shop_id", flat=True).distinct())
        operations = sorted(set(calls.values_list("operation", flat=True).distinct()[:6]))
    shops = list(Shop.objects.filter(pk__in=shop_ids).order_by("domain").values_list("domain", flat=True))
    direction = Direction.BOTH if event_ids and call_ids else Direction.OUTBOUND if call_ids else Direction.INBOUND
    return {
        "event_count": len(event_ids),
        "call_count": len(call_ids),
        "event_ids": event_ids,
        "call_ids": call_ids,
        "shops": shops,
        "topics": topics,
        "operations": operations,
        "direction": direction,
        "direction_label": Direction(direction).label,
        "measured": measured,
        "errors": errors,
        "linked": bool(event_ids or call_ids or events_filter or calls_filter),
        "events_filter_parts": [part for part in events_filter.split("&") if part],
        "calls_filter_parts": [part for part in calls_filter.split("&") if part],
    }


def _suggested_title(candidate: dict) -> str:
    what = candidate["topics"][:2] + candidate["operations"][:2]
    if not what:
        return ""
    where = candidate["shops"][:2]
    more = f" and {len(candidate['shops']) - 2} more" if len(candidate["shops"]) > 2 else ""
    return f"{', '.join(what)} failing" + (f" for {', '.join(where)}{more}" if where else "")[:200]


def _new_context(form: forms.NewIncidentForm, candidate: dict) -> dict:
    return {
        "form": form,
        "candidate": candidate,
        "assessment": form.assessment() if form.is_bound else _initial_assessment(form),
        "measured": candidate["measured"],
        "suggested": candidate["measured"].suggested_answers(),
    }


def _initial_assessment(form: forms.RubricForm) -> rubric.Assessment:
    initial = {**{name: field.initial for name, field in form.fields.items()}, **form.initial}
    answers = rubric.Answers(
        orders=initial.get("orders") or rubric.ORDERS_FINE,
        fulfilment_affected=bool(initial.get("fulfilment_affected")),
        money_or_stock_wrong=bool(initial.get("money_or_stock_wrong")),
        customer_visible=bool(initial.get("customer_visible")),
        workaround=bool(initial.get("has_workaround")),
        records=int(initial.get("records") or 0),
        shops=int(initial.get("shops") or 0),
    )
    return rubric.assess(answers)


def _preview(request: HttpRequest, form: forms.RubricForm, template: str = "incidents/_new_preview.html"):
    form.is_valid()
    return render(request, template, {"assessment": form.assessment(), "form": form})


@require_http_methods(["GET", "POST"])
@require_perm(VIEW, ADD)
def incident_new(request: HttpRequest) -> HttpResponse:
    """GET: the form, prefilled from what the query string links. POST with `preview`: the
    severity the answers give (htmx: only that part). POST: open the incident and go to it."""
    if request.method == "GET":
        links = _links_from_query(request)
        candidate = _candidate(**links)
        suggested = candidate["measured"].suggested_answers()
        initial = {
            **forms.RubricForm.initial_from(suggested),
            **links,
            "direction": request.GET.get("direction") or candidate["direction"],
            "title": request.GET.get("title", "")[:200] or _suggested_title(candidate),
        }
        if initial["direction"] not in Direction.values:
            initial["direction"] = candidate["direction"]
        form = forms.NewIncidentForm(initial=initial)
        return render(request, "incidents/new.html", _new_context(form, candidate))

    form = forms.NewIncidentForm(request.POST)
    if request.POST.get("preview") and request.htmx:
        return _preview(request, form)
    valid = form.is_valid()
    links = {name: form.cleaned_data.get(name) or default for name, default in _EMPTY_LINKS.items()}
    candidate = _candidate(**links)
    for error in candidate["errors"]:
        form.add_error(None, error)
    if not valid or candidate["errors"] or request.POST.get("preview"):
        return render(request, "incidents/new.html", _new_context(form, candidate))
    data = form.cleaned_data
    try:
        call_ids = list(data["call_ids"]) + (
            services.calls_for_filter(data["calls_filter"]) if data["calls_filter"] else []
        )
        incident = services.open_incident(
            title=data["title"], by=request.user, direction=data["direction"], event_ids=data["event_ids"],
            events_filter=data["events_filter"], call_ids=call_ids, summary=data["summary"],
            answers=form.answers(), severity=data["severity"], severity_reason=data["severity_reason"],
            public_title=data["public_title"], customer_impact=data["customer_impact"],
            customer_advice=data["customer_advice"], workaround=data["workaround"], request=request,
        )  # fmt: skip
    except IncidentError as error:
        form.add_error(None, str(error))
        return render(request, "incidents/new.html", _new_context(form, candidate))
    messages.success(
        request,
        f"Incident #{incident.pk} opened as {incident.severity_label}: "
        f"{incident.events.count()} events and {incident.outbound_calls.count()} outbound calls linked.",
    )
    return _detail(incident)


_EMPTY_LINKS = {"event_ids": [], "events_filter": "", "call_ids": [], "calls_filter": ""}


# --- Detail -----------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, incident: Incident) -> dict:
    """Everything the page shows, in a fixed number of queries whatever the incident's size."""
    user = request.user
    measured = services.measure(incident)  # refreshes the affected records' repair states first
    is_open = incident.is_open
    actions = list(incident.actions.select_related("owner", "done_by").order_by("done", "due_at", "id"))
    containment = [a for a in actions if a.kind == IncidentAction.Kind.CONTAINMENT]
    remediation = [a for a in actions if a.kind == IncidentAction.Kind.REMEDIATION]
    shops = list(incident.shops.order_by("domain"))
    worksheets = list(
        incident.worksheets.select_related("shop")
        .order_by("id")
        .only("id", "title", "state", "resource", "shop__domain")
    )
    applied = [w.pk for w in worksheets if w.state in ("applied", "partially_applied")]
    blockers = services.resolve_blockers(incident) if is_open else None
    event_count = incident.events.count()
    call_count = incident.outbound_calls.count()
    affected_count = incident.affected.count()
    transitions = sorted(Incident.STATES.transitions.get(incident.status, ()), key=list(Status.values).index)
    shop_qs = incident.shops.order_by("domain")
    can_change = user.has_perm(CHANGE)
    current = _current_answers(incident, measured)
    return {
        "incident": incident,
        "can_change": can_change,
        "can_post_update": user.has_perm(POST_UPDATE),
        "transitions": [(t, Status(t).label) for t in transitions if t != Status.RESOLVED],
        "can_resolve": Status.RESOLVED in transitions,
        "blockers": blockers,
        "gate_text": services.data_gate_text(blockers) if blockers else "",
        "measured": measured,
        "severity_changes": list(incident.severity_changes.select_related("by").order_by("at", "id")),
        "severity_form": forms.SeverityForm(initial=forms.RubricForm.initial_from(current)),
        "assessment": rubric.assess(current),
        "strategy_form": forms.StrategyForm(
            initial={"strategy": incident.strategy, "reason": incident.strategy_reason}
        ),
        "replayable": len(services.replayable_event_ids(incident)) if event_count else 0,
        "replay_form": forms.ReplayForm(),
        "pause_form": forms.PauseForm(initial={"reason": f"Incident #{incident.pk}: {incident.title}"[:500]}),
        "disable_form": forms.DisableForm(shops=shop_qs, initial={"reason": f"Incident #{incident.pk}"}),
        "correction_form": forms.CorrectionForm(shops=shop_qs),
        "rollback_form": forms.RollbackForm(worksheets=incident.worksheets.filter(pk__in=applied).order_by("id"))
        if applied
        else None,
        "watch_form": forms.WatchForm(
            shops=shop_qs,
            initial={"topic": incident.watch_topic, "shop": incident.watch_shop_id, "minutes": incident.watch_minutes},
        ),
        "watch": services.watch_status(incident),
        "responses": _responses(incident),
        "containment": containment,
        "remediation": remediation,
        "action_form": forms.ActionForm(),
        "updates": list(incident.updates.select_related("author", "confirmed_by").order_by("-created_at", "-id")),
        "update_form": forms.UpdateForm(initial={"audience": IncidentUpdate.Audience.ENGINEERING}),
        "notifications": list(incident.notifications.order_by("-created_at", "-id")),
        "events": list(
            incident.events.select_related("shop")
            .only("id", "topic", "status", "received_at", "resource_label", "shop__domain")
            .order_by("id")[:EVENTS_SHOWN]
        ),
        "event_count": event_count,
        "calls": list(
            incident.outbound_calls.select_related("shop")
            .only("id", "operation", "status", "created_at", "target_label", "reason", "shop__domain")
            .order_by("id")[:CALLS_SHOWN]
        ),
        "call_count": call_count,
        "replays": list(incident.replays.defer("plan").order_by("id")),
        "worksheets": worksheets,
        "shops": shops,
        "link_form": forms.LinkForm(),
        **_affected_context(request, incident, affected_count),
        "repair_states": AffectedRecord.RepairState.choices,
        "steps": list(incident.steps.order_by("at", "id")),
        "edit_form": forms.EditForm.for_incident(incident),
    }


def _current_answers(incident: Incident, measured: rubric.Measured) -> rubric.Answers:
    """The rubric's answers the severity came from; what the data suggests for those never given."""
    try:
        return rubric.Answers.from_dict({**measured.suggested_answers().as_dict(), **(incident.rubric or {})})
    except (TypeError, ValueError):
        return measured.suggested_answers()


def _responses(incident: Incident) -> list[tuple[str, str, bool]]:
    """(strategy, label, chosen) in the order the page offers them; the chosen one first."""
    chosen = incident.strategy
    order = [chosen] if chosen else []
    order += [value for value in Strategy.values if value != chosen]
    return [(value, Strategy(value).label, value == chosen) for value in order]


def _affected_context(request: HttpRequest, incident: Incident, affected_count: int) -> dict:
    """The first AFFECTED_SHOWN records, those needing someone first, or only one repair state
    (?affected=waiting), with the count in each state."""
    by_state = dict(incident.affected.values_list("repair_state").annotate(n=Count("id")).order_by())
    wanted = request.GET.get("affected", "")
    records = incident.affected.select_related("shop")
    if wanted in AffectedRecord.RepairState.values:
        records = records.filter(repair_state=wanted)
    priority = Case(*(When(repair_state=state, then=Value(n)) for n, state in enumerate(REPAIR_ORDER)))
    return {
        "affected_records": list(records.order_by(priority, "kind", "key")[:AFFECTED_SHOWN]),
        "affected_count": affected_count,
        "affected_shown": AFFECTED_SHOWN,
        "affected_filter": wanted if wanted in AffectedRecord.RepairState.values else "",
        "affected_by_state": [
            (value, label, by_state.get(value, 0)) for value, label in AffectedRecord.RepairState.choices
        ],
    }


@require_GET
@require_perm(VIEW)
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    return render(request, "incidents/detail.html", _detail_context(request, incident))


@require_GET
@require_perm(VIEW)
def incident_summary(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    response = HttpResponse(services.summary_markdown(incident), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incident-{incident.pk}.md"'
    return response


# --- Changes ----------------------------------------------------------------------------------


def _refused(request: HttpRequest, form) -> None:
    messages.error(request, forms.error_text(form) or "That could not be read.")


@require_POST
@require_perm(VIEW, CHANGE)
def incident_edit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.EditForm(request.POST, incident=incident)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "edit")
    try:
        services.edit(incident, by=request.user, request=request, **form.cleaned_data)
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "edit")
    messages.success(request, "Saved.")
    return _detail(incident)


@require_POST
@require_perm(VIEW, CHANGE)
def incident_severity(request: HttpRequest, pk: int) -> HttpResponse:
    """The rubric answered again (or an override with its reason); with `preview` and htmx, only
    the severity the answers would give."""
    incident = _incident(pk)
    form = forms.SeverityForm(request.POST)
    if request.POST.get("preview") and request.htmx:
        return _preview(request, form)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "severity")
    before = incident.severity
    try:
        incident = services.set_severity(
            incident, by=request.user, answers=form.answers(), override=form.cleaned_data["severity"],
            reason=form.cleaned_data["severity_reason"], request=request,
        )  # fmt: skip
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "severity")
    if before != incident.severity:
        messages.success(request, f"Severity {before.upper()} → {incident.severity_label}.")
    else:
        messages.success(request, f"Severity stays {incident.severity_label}; the answers are kept.")
    return _detail(incident, "severity")


@require_POST
@require_perm(VIEW, CHANGE)
def incident_status(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.StatusForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident)
    target = form.cleaned_data["status"]
    if target == Status.RESOLVED:
        return _resolve(request, incident, request.POST.get("override_reason", ""))  # the gates, one way
    try:
        incident = services.change_status(incident, target, by=request.user, note=form.cleaned_data["note"])
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident)
    messages.success(request, f"Status: {incident.get_status_display()}.")
    return _detail(incident)


@require_POST
@require_perm(VIEW, CHANGE)
def incident_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.ResolveForm(request.POST)
    form.is_valid()
    return _resolve(request, incident, form.cleaned_data.get("override_reason", ""))


def _resolve(request: HttpRequest, incident: Incident, reason: str) -> HttpResponse:
    try:
        incident = services.resolve(incident, by=request.user, override_reason=reason, request=request)
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "resolve")
    note = " with an override" if incident.resolve_override_reason else ""
    messages.success(request, f"Incident #{incident.pk} resolved{note}.")
    return _detail(incident)


@require_POST
@require_perm(VIEW, CHANGE)
def incident_strategy(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.StrategyForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "response")
    try:
        incident = services.choose_strategy(
            incident,
            form.cleaned_data["strategy"],
            by=request.user,
            reason=form.cleaned_data["reason"],
            request=request,
        )
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "response")
    messages.success(request, f"Response: {incident.get_strategy_display()}. Carry it out below.")
    return _detail(incident, "response")


@require_POST
@require_perm(VIEW, CHANGE)
def incident_respond(request: HttpRequest, pk: int, response: str) -> HttpResponse:
    """One click to the tool that carries out a response (each checks its own permission)."""
    incident = _incident(pk)
    handler = RESPONSES.get(response)
    if handler is None:
        raise Http404("No such response")
    chosen = incident.strategy
    try:
        page = handler(request, incident)
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "response")
    if not chosen:
        services.choose_strategy(
            incident, RESPONSE_STRATEGY[response], by=request.user, reason="chosen by carrying it out", request=request
        )
    return page


def _respond_replay(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = forms.ReplayForm(request.POST)
    form.is_valid()
    mode = form.cleaned_data.get("mode") or ReplayRequest.Mode.STORED
    replay = services.start_controlled_replay(incident, by=request.user, mode=mode, request=request)
    messages.success(
        request,
        f"Dry run #{replay.pk} of incident #{incident.pk}'s failing events: nothing has run. Check it, then run it.",
    )
    return redirect("replays:detail", pk=replay.pk)


def _respond_pause(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = forms.PauseForm(request.POST)
    if not form.is_valid():
        raise IncidentError("Pausing a shop's outbound queue needs a reason (kept in the audit trail).")
    paused = services.pause_queues(incident, by=request.user, reason=form.cleaned_data["reason"], request=request)
    names = ", ".join(f"{shop.domain} ({held} calls held)" for shop, held in paused)
    messages.success(request, f"Paused the outbound queue of {names}; recorded as a done containment action.")
    return _detail(incident, "actions")


def _respond_disable(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = forms.DisableForm(request.POST, shops=incident.shops.all())
    if not form.is_valid():
        raise IncidentError(forms.error_text(form))
    data = form.cleaned_data
    services.disable_handler(incident, job=data["job"], shop=data["shop"], by=request.user, reason=data["reason"],
                             request=request)  # fmt: skip
    where = data["shop"].domain if data["shop"] else "every shop"
    messages.success(request, f"Disabled {data['job']} for {where}: its events are held for a replay.")
    return _detail(incident, "actions")


def _respond_worksheet(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = forms.CorrectionForm(request.POST, shops=incident.shops.all())
    if not form.is_valid():
        raise IncidentError(forms.error_text(form))
    worksheet = services.start_manual_correction(
        incident,
        by=request.user,
        resource=form.cleaned_data["resource"],
        shop=form.cleaned_data["shop"],
        request=request,
    )
    messages.success(
        request, f"Worksheet #{worksheet.pk} of incident #{incident.pk}'s records: compare it, then review."
    )
    return redirect("worksheets:detail", pk=worksheet.pk)


def _respond_rollback(request: HttpRequest, incident: Incident) -> HttpResponse:
    from incidents.worksheets.models import Worksheet

    raw = request.POST.get("worksheet", "")
    if not raw.isdigit():
        raise IncidentError("Choose the linked worksheet to roll back.")
    worksheet = get_object_or_404(Worksheet, pk=int(raw), incident=incident)
    back = services.rollback_worksheet(incident, worksheet, by=request.user, request=request)
    messages.success(request, f"Worksheet #{back.pk} writes back what worksheet #{worksheet.pk} changed: review it.")
    return redirect("worksheets:detail", pk=back.pk)


def _respond_watch(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = forms.WatchForm(request.POST, shops=incident.shops.all())
    if not form.is_valid():
        raise IncidentError(forms.error_text(form))
    data = form.cleaned_data
    incident = services.start_watch(
        incident, by=request.user, topic=data["topic"], shop=data["shop"], minutes=data["minutes"],
        remind_at=data["remind_at"], request=request,
    )  # fmt: skip
    messages.success(
        request, f"Watching {incident.watch_topic}: a reminder is due {incident.watch_remind_at:%Y-%m-%d %H:%M} UTC."
    )
    return _detail(incident, "response")


RESPONSES = {
    "replay": _respond_replay,
    "pause": _respond_pause,
    "disable": _respond_disable,
    "worksheet": _respond_worksheet,
    "rollback": _respond_rollback,
    "watch": _respond_watch,
}


@require_POST
@require_perm(VIEW, CHANGE)
def incident_link(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.LinkForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "links")
    data = form.cleaned_data
    try:
        call_ids = list(data["call_ids"]) + (
            services.calls_for_filter(data["calls_filter"]) if data["calls_filter"] else []
        )
        counts = services.link(
            incident, by=request.user, event_ids=data["event_ids"], events_filter=data["events_filter"],
            call_ids=call_ids, request=request,
        )  # fmt: skip
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "links")
    messages.success(request, f"Linked {counts['events']} events and {counts['calls']} outbound calls.")
    return _detail(incident, "links")


@require_POST
@require_perm(VIEW, CHANGE)
def action_add(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.ActionForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "actions")
    data = form.cleaned_data
    try:
        action = services.add_action(
            incident, kind=data["kind"], title=data["title"], by=request.user, owner=data["owner"],
            due_at=data["due_at"], request=request,
        )  # fmt: skip
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "actions")
    messages.success(request, f"Added {action.get_kind_display().lower()} action “{action.title}”.")
    return _detail(incident, "actions")


@require_POST
@require_perm(VIEW, CHANGE)
def action_done(request: HttpRequest, pk: int, action_id: int) -> HttpResponse:
    incident = _incident(pk)
    action = get_object_or_404(IncidentAction.objects.select_related("incident"), pk=action_id, incident=incident)
    done = request.POST.get("done", "1") != "0"
    try:
        action = services.complete_action(action, by=request.user, done=done, request=request)
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "actions")
    messages.success(request, f"“{action.title}” {'done' if action.done else 'reopened'}.")
    return _detail(incident, "actions")


@require_POST
@require_perm(VIEW, POST_UPDATE)
def update_post(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    form = forms.UpdateForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "updates")
    data = form.cleaned_data
    try:
        update = services.post_update(
            incident, body=data["body"], audience=data["audience"], by=request.user, confirmed=data["confirmed"],
            next_update_at=data["next_update_at"], request=request,
        )  # fmt: skip
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "updates")
    state = "confirmed and sent to its list" if update.confirmed else "kept for the team until someone confirms it"
    messages.success(request, f"Update for {update.get_audience_display()} posted: {state}.")
    return _detail(incident, "updates")


@require_POST
@require_perm(VIEW, POST_UPDATE)
def update_confirm(request: HttpRequest, pk: int, update_id: int) -> HttpResponse:
    incident = _incident(pk)
    update = get_object_or_404(IncidentUpdate.objects.select_related("incident"), pk=update_id, incident=incident)
    try:
        services.confirm_update(update, by=request.user, request=request)
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "updates")
    messages.success(request, f"Confirmed: the update for {update.get_audience_display()} may be shared and was sent.")
    return _detail(incident, "updates")


@require_POST
@require_perm(VIEW, CHANGE)
def notification_send_again(request: HttpRequest, pk: int, notification_id: int) -> HttpResponse:
    from incidents import notifications

    incident = _incident(pk)
    notification = get_object_or_404(Notification, pk=notification_id, incident=incident)
    if not notifications.send_again(notification):
        messages.error(request, "Only a notification that failed to send can be sent again.")
        return _detail(incident, "notifications")
    notification.refresh_from_db()
    if notification.status == Notification.Status.FAILED:
        messages.error(request, f"Sending again failed: {notification.error}")
    else:
        messages.success(request, f"“{notification.get_kind_display()}” to {notification.get_audience_display()} "
                                  f"queued again for {len(notification.recipients)} recipients.")  # fmt: skip
    return _detail(incident, "notifications")


@require_POST
@require_perm(VIEW, CHANGE)
def affected_set(request: HttpRequest, pk: int, record_id: int) -> HttpResponse:
    incident = _incident(pk)
    record = get_object_or_404(AffectedRecord.objects.select_related("incident"), pk=record_id, incident=incident)
    form = forms.RepairStateForm(request.POST)
    if not form.is_valid():
        _refused(request, form)
        return _detail(incident, "affected")
    try:
        record = services.set_repair_state(
            record, form.cleaned_data["repair_state"], by=request.user, note=form.cleaned_data["note"], request=request
        )
    except IncidentError as error:
        messages.error(request, str(error))
        return _detail(incident, "affected")
    messages.success(request, f"{record.get_kind_display()} {record.key}: {record.get_repair_state_display().lower()}.")
    return _detail(incident, "affected")
