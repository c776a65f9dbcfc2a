"""The event log: list (with live poll and CSV export) of inbound webhooks and outbound calls,
event and rejected-delivery detail, triage actions, saved views, and the worker's failed tasks.
Views stay thin; queries live in `selectors`, changes in `triage` and `saved_views`. The call page
and its actions are in `integrations.outbound.views`.

Every query parameter goes through a form: a bad filter on the list page is reported beside the
filters (and not applied); anywhere a page cannot say so (export, live poll, cursors), it is 400.
"""

import csv

from django import forms
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.access import require_perm
from console.pagination import keyset_page
from integrations.eventlog import export, filters, saved_views, selectors, triage
from integrations.eventlog.trace import plain_words, trace_event, trace_webhook
from integrations.models import Delivery, Event, SavedView
from integrations.processing import interventions
from integrations.replay.forms import filter_from_event_log

VIEW = "integrations.view_event"
TRIAGE = "integrations.triage_event"
VIEW_CALLS = "integrations.view_outboundcall"
REPLAY = "integrations.request_replay"


# --- List -----------------------------------------------------------------------------------


def _position(request: HttpRequest) -> dict:
    """The validated `after` and `after_call` parameters; 400 when either is not an id we could have sent."""
    form = filters.PositionForm(request.GET)
    if not form.is_valid():
        raise BadRequest(f"Bad list position: {form.errors.as_text()}")
    return form.cleaned_data


def _filter_form(request: HttpRequest) -> filters.EventFilterForm:
    return filters.EventFilterForm(request.GET or None, with_calls=request.user.has_perm(VIEW_CALLS))


def _strict_filters(form: filters.EventFilterForm) -> dict:
    """The filters, or 400 naming the bad ones: for answers that cannot show a form error."""
    if form.has_invalid_filters():
        raise BadRequest(f"Invalid filters (nothing was applied): {form.error_summary()}")
    return form.filters()


def _log_for(request: HttpRequest, applied: dict) -> selectors.LogQuery:
    """The log for the applied filters; outbound calls also need the right to see calls (without
    it, "All directions" lists the inbound rows only)."""
    with_calls = request.user.has_perm(VIEW_CALLS)
    log = selectors.build_log_query(applied, with_calls=with_calls)
    if log.kind == filters.KIND_OUTBOUND and not with_calls:
        raise PermissionDenied
    return log


@require_GET
@require_perm(VIEW)
def event_list(request: HttpRequest) -> HttpResponse:
    form = _filter_form(request)
    applied = form.filters()
    log = _log_for(request, applied)
    # Each list checks its own cursor (an id, or a position in both streams): 400 if not one we sent.
    cursor = request.GET.get("cursor") or None
    if log.kind == filters.KIND_MIXED:
        page = selectors.mixed_page(log, cursor, per_page=selectors.PAGE_SIZE)
        newest = page.newest
    else:
        page = keyset_page(log.queryset, cursor=cursor, per_page=selectors.PAGE_SIZE)
        # The live poll asks for rows above the newest one shown (0 when none matched yet).
        newest = {log.kind: page.rows[0].pk if page.rows else 0}
    query = form.query_string()
    also = _also_blocks(log, query) if page.first_page else []
    selectors.mark_out_of_order([*page.rows, *(row for block in also for row in block["rows"])])
    context = {
        "form": form,
        "log": log,
        "page": page,
        "query": query,
        "also": also,
        **_poll_positions(log, newest),
        # Topics, and operations too where calls may be listed.
        "topics": filters.topic_suggestions(
            applied.get("direction") or ("" if request.user.has_perm(VIEW_CALLS) else filters.INBOUND)
        ),
        "saved_views": SavedView.objects.filter(user=request.user),
        # The filters as a replay filter ("" when they have none): "dry-run every matching event".
        "replay_filter": filter_from_event_log(form, log.kind) if request.user.has_perm(REPLAY) else "",
    }
    if request.htmx and cursor:
        return render(request, "integrations/events/_rows.html", context)
    return render(request, "integrations/events/list.html", context)


def _poll_positions(log: selectors.LogQuery, newest: dict[str, int]) -> dict[str, int]:
    """`newest_id` (events, or the one kind listed) and, for both directions, `newest_call_id`."""
    if log.kind == filters.KIND_MIXED:
        return {"newest_id": newest[filters.KIND_EVENTS], "newest_call_id": newest[filters.KIND_OUTBOUND]}
    return {"newest_id": newest[log.kind]}


def _also_blocks(log: selectors.LogQuery, query: str) -> list[dict]:
    """The rows with the searched webhook id that the status filter hides, with a link to all of them."""
    blocks = []
    for extra, rows, more in selectors.also_rows(log):
        params = QueryDict(query, mutable=True)
        params.pop("status", None)
        if extra.kind == filters.KIND_REJECTED:
            params["status"] = filters.REJECTED
            title = "Rejected requests with this webhook id (they never became events)"
        elif log.kind == filters.KIND_REJECTED:
            title = "Accepted events with this webhook id"
        else:
            title = "Events with this webhook id in another status"
        blocks.append({"log": extra, "rows": rows, "more": more, "title": title, "query": params.urlencode()})
    return blocks


@require_GET
@require_perm(VIEW)
def event_poll(request: HttpRequest) -> HttpResponse:
    """Rows newer than `after` that match the filters, with the poller that asks for the next ones."""
    form = _filter_form(request)
    log = _log_for(request, _strict_filters(form))
    position = _position(request)
    after, after_call = position["after"] or 0, position["after_call"] or 0
    rows = selectors.newer_rows(log, after, after_call)
    selectors.mark_out_of_order(rows)
    if log.kind == filters.KIND_MIXED:
        since = {filters.KIND_EVENTS: after, filters.KIND_OUTBOUND: after_call}
    else:
        since = {log.kind: after}
    newest = selectors.newest_ids(rows, log, since)
    context = {"log": log, "rows": rows, "query": form.query_string(), **_poll_positions(log, newest)}
    return render(request, "integrations/events/_poll.html", context)


class _Echo:
    """csv.writer needs a file; this one hands each line straight back to the stream."""

    def write(self, value: str) -> str:
        return value


@require_GET
@require_perm(VIEW)
def event_export(request: HttpRequest) -> StreamingHttpResponse:
    form = _filter_form(request)
    # An export without the filter that was asked for would be a different (larger) file: refuse.
    log = _log_for(request, _strict_filters(form))
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in export.export_rows(log))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = {filters.KIND_OUTBOUND: "outbound-calls", filters.KIND_MIXED: "events-and-calls"}.get(log.kind, "events")
    filename = f"{name}-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Detail ---------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(selectors.events_for_detail(), pk=pk)
    trace = trace_event(event)
    context = {
        "event": event,
        "trace": trace,
        "answers": plain_words(trace),
        "timeline": selectors.timeline(event),
        "payload": selectors.payload_of(event),
        "related": selectors.related_events(event),
        **_triage_context(request, event),
    }
    if request.user.has_perm(VIEW_CALLS):
        # Our own calls that changed this record (an echo is one of them coming back).
        context["record_calls"] = selectors.calls_for_record(event.shop_id, event.resource_gid)
    return render(request, "integrations/events/detail.html", context)


@require_GET
@require_perm(VIEW, "integrations.view_delivery")
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    if delivery.event_id is not None:
        return redirect(f"{reverse('events:detail', args=[delivery.event_id])}#delivery-{delivery.pk}")
    trace = trace_webhook(delivery.webhook_id, delivery.shop_domain) if delivery.webhook_id else None
    context = {
        "delivery": delivery,
        "trace": trace,
        "triggered_at": selectors.delivery_triggered_at(delivery),
        "payload": selectors.render_payload(delivery.body),
    }
    return render(request, "integrations/events/delivery.html", context)


# --- Triage ---------------------------------------------------------------------------------


class NoteForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.TextInput(attrs={"placeholder": "Note (optional)"})
    )


class AssignForm(NoteForm):
    assignee = forms.ModelChoiceField(queryset=triage.assignable_users(), required=False, empty_label="Nobody")


class TagsForm(NoteForm):
    tags = forms.CharField(
        required=False,
        max_length=triage.MAX_TAGS_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "comma, separated"}),
    )


@require_POST
@require_perm(VIEW, TRIAGE)
def triage_state(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("assignee"), pk=pk)
    if not triage.is_triageable(event):
        return _after_triage(request, event, error=_not_triageable(event))
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _after_triage(request, event, error="The note is too long.")
    changed = triage.change_triage_state(
        event=event, action=action, by=request.user, note=form.cleaned_data["note"], request=request
    )
    return _after_triage(request, event, changed=changed, success=f"Event {triage.PAST_TENSE[action]}.")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True)


# action -> (service, button label); each from the states Event.STATES lets it leave by hand.
STATUS_ACTIONS = {
    "mark_failed": (interventions.mark_event_failed, "Mark failed"),
    "mark_ignored": (interventions.mark_event_ignored, "Mark ignored"),
}


@require_POST
@require_perm(VIEW, TRIAGE)
def set_status(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """A person gives up on an event (failed) or says it needs nothing (ignored), with a reason."""
    event = get_object_or_404(Event, pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why: the reason is kept on the event and in the audit trail.")
        return redirect("events:detail", pk=pk)
    service, label = STATUS_ACTIONS[action]
    if service(event=event, by=request.user, reason=form.cleaned_data["reason"], request=request):
        messages.success(request, f"{label.split()[1].capitalize()}: the worker will not process this event again.")
    else:
        messages.error(
            request,
            f"Not changed: the event is {event.get_status_display().lower()} now, which {label.lower()} cannot leave.",
        )
    return redirect("events:detail", pk=pk)


@require_POST
@require_perm(VIEW, TRIAGE)
def triage_assign(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("assignee"), pk=pk)
    if not triage.is_triageable(event):
        return _after_triage(request, event, error=_not_triageable(event))
    form = AssignForm(request.POST)
    if not form.is_valid():
        return _after_triage(request, event, error="Pick a member of support or admin.")
    assignee = form.cleaned_data["assignee"]
    changed = triage.assign_event(
        event=event, assignee=assignee, by=request.user, note=form.cleaned_data["note"], request=request
    )
    success = f"Assigned to {assignee.get_username()}." if assignee else "Unassigned."
    return _after_triage(request, event, changed=changed, success=success)


@require_POST
@require_perm(VIEW, TRIAGE)
def triage_tags(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("assignee"), pk=pk)
    if not triage.is_triageable(event):
        return _after_triage(request, event, error=_not_triageable(event))
    form = TagsForm(request.POST)
    if not form.is_valid():
        return _after_triage(request, event, error="Tags are too long.")
    try:
        changed = triage.tag_event(
            event=event,
            tags=[form.cleaned_data["tags"]],
            by=request.user,
            note=form.cleaned_data["note"],
            request=request,
        )
    except ValueError as exc:
        return _after_triage(request, event, error=str(exc))
    return _after_triage(request, event, changed=changed, success="Tags saved.")


def _after_triage(
    request: HttpRequest, event: Event, *, changed: bool = False, success: str = "", error: str = ""
) -> HttpResponse:
    if not error and not changed:
        error = "Nothing changed: the event was already like that, or someone else changed it first. Reloaded."
    if request.htmx:
        event = Event.objects.select_related("assignee").get(pk=event.pk)
        context = {"event": event, "flash": error or success, "flash_error": bool(error)}
        context |= _triage_context(request, event)
        return render(request, "integrations/events/_triage_panel.html", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, success)
    return redirect("events:detail", pk=event.pk)


def _not_triageable(event: Event) -> str:
    return (
        f"Nothing to triage: the event is {event.get_status_display().lower()}. Triage is for events that "
        "failed, wait to retry or were ignored."
    )


def _triage_context(request: HttpRequest, event: Event) -> dict:
    context = {
        "notes": event.history.select_related("author"),
        "tags": [tag for tag in event.tags.split(",") if tag],
        "triageable": triage.is_triageable(event),
    }
    if request.user.has_perm(TRIAGE):
        context["can_triage"] = True
        if context["triageable"]:
            context["assign_form"] = AssignForm(initial={"assignee": event.assignee_id})
            context["tags_form"] = TagsForm(initial={"tags": event.tags.replace(",", ", ")})
            context["actions"] = [
                action for action, (from_states, _) in triage.TRANSITIONS.items() if event.triage_state in from_states
            ]
        context["status_actions"] = [
            (action, label)
            for action, (_service, label) in STATUS_ACTIONS.items()
            if event.status in interventions.sources_for(action)
        ]
    return context


# --- Saved views ----------------------------------------------------------------------------


class SaveViewForm(forms.Form):
    name = forms.CharField(max_length=80)
    query = forms.CharField(max_length=1000, required=False)


@require_POST
@require_perm(VIEW)
def save_view(request: HttpRequest) -> HttpResponse:
    form = SaveViewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the view a name (80 characters at most).")
        return redirect("events:list")
    # Re-validate the filter through the form so a saved view only ever holds known, valid filters.
    filter_form = filters.EventFilterForm(QueryDict(form.cleaned_data["query"]))
    query = filter_form.query_string()
    if filter_form.has_invalid_filters():
        messages.error(request, f"Not saved: {filter_form.error_summary()}")
        return redirect(f"{reverse('events:list')}?{query}" if query else reverse("events:list"))
    view = saved_views.save_view(user=request.user, name=form.cleaned_data["name"], query=query)
    messages.success(request, f"Saved view “{view.name}”.")
    return redirect(f"{reverse('events:list')}?{view.query}" if view.query else reverse("events:list"))


@require_POST
@require_perm(VIEW)
def delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    if not saved_views.delete_view(user=request.user, view_id=pk):
        raise Http404("No such saved view of yours.")
    messages.success(request, "Saved view deleted.")
    return redirect("events:list")


# --- The worker's failed tasks ---------------------------------------------------------------

FAILED_TASKS_SHOWN = 100


@require_GET
@require_perm("integrations.view_job")
def failed_tasks(request: HttpRequest) -> HttpResponse:
    """django-q2 tasks that raised, newest first: kept until someone clears them, never dropped.

    Read-only for everyone (support and admins): which function failed, when, with what error.
    """
    from django_q.models import Failure

    failures = Failure.objects.order_by("-stopped").only(
        "id", "name", "func", "group", "started", "stopped", "result", "attempt_count"
    )
    rows = list(failures[: FAILED_TASKS_SHOWN + 1])
    capped = len(rows) > FAILED_TASKS_SHOWN
    context = {"tasks": rows[:FAILED_TASKS_SHOWN], "capped": capped, "total": failures.count() if capped else len(rows)}
    return render(request, "integrations/events/failed_tasks.html", context)
