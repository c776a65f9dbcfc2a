"""The event log: list (with live poll and CSV export), event and rejected-delivery detail,
triage actions and saved views. Views stay thin; queries live in `event_log`, changes in
`triage` and `saved_views`."""

import csv

from django import forms
from django.contrib import messages
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

VIEW = "integrations.view_event"
TRIAGE = "integrations.triage_event"


# --- List -----------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def event_list(request: HttpRequest) -> HttpResponse:
    form = filters.EventFilterForm(request.GET or None)
    log = selectors.build_log_query(form.filters())
    page = keyset_page(log.queryset, cursor=request.GET.get("cursor"))
    context = {
        "form": form,
        "log": log,
        "page": page,
        "query": form.query_string(),
        # The live poll asks for rows above the newest one shown (0 when none matched yet).
        "newest_id": page.rows[0].pk if page.rows else 0,
        "topics": filters.COMMON_TOPICS,
        "saved_views": SavedView.objects.filter(user=request.user),
    }
    if request.htmx and request.GET.get("cursor"):
        return render(request, "integrations/events/_rows.html", context)
    return render(request, "integrations/events/list.html", context)


@require_GET
@require_perm(VIEW)
def event_poll(request: HttpRequest) -> HttpResponse:
    """Rows newer than `after` that match the filters, with the poller that asks for the next ones."""
    form = filters.EventFilterForm(request.GET or None)
    log = selectors.build_log_query(form.filters())
    try:
        after = max(int(request.GET.get("after", "0")), 0)
    except ValueError:
        after = 0
    rows = selectors.newer_rows(log, after)
    context = {"log": log, "rows": rows, "query": form.query_string(), "newest_id": rows[0].pk if rows else after}
    return render(request, "integrations/events/_poll.html", context)


class _Echo:
    """csv.writer needs a file; this one hands each line straight back to the stream."""

    def write(self, value: str) -> str:
        return value


@require_GET
@require_perm(VIEW)
def event_export(request: HttpRequest) -> StreamingHttpResponse:
    form = filters.EventFilterForm(request.GET or None)
    log = selectors.build_log_query(form.filters())
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in export.export_rows(log))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = f"events-{timezone.now():%Y%m%d-%H%M%S}.csv"
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


def _triage_context(request: HttpRequest, event: Event) -> dict:
    context = {
        "notes": event.history.select_related("author"),
        "tags": [tag for tag in event.tags.split(",") if tag],
    }
    if request.user.has_perm(TRIAGE):
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
    # Re-validate the filter through the form so a saved view only ever holds known filters.
    query = filters.EventFilterForm(QueryDict(form.cleaned_data["query"])).query_string()
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
