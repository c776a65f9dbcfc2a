"""The replay pages: the list, the dry run (what would run and what would be skipped, and why)
shown before anything runs, the confirm / approve / cancel / dry-run-again actions, and the
progress panel that polls itself while the worker's replay lane runs it.

Views stay thin: every change goes through `integrations.replay.services`, which checks the state
(and the plan's hash), writes the audit entry and says in words why it refuses. The permission
checks are here, on the server (`require_perm`); the templates only hide what a role cannot do.
"""

from collections import Counter
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console.access import require_perm
from console.models import AuditEntry
from console.pagination import keyset_page
from integrations.models import ReplayItem, ReplayRequest
from integrations.replay import forms, services
from integrations.replay.planner import KINDS, RUN
from integrations.replay.runner import waiting_counts
from integrations.replay.selection import SelectionError, for_events, for_filter

VIEW = "integrations.view_replayrequest"
REQUEST = "integrations.request_replay"
APPROVE = "integrations.approve_replay"
Status = ReplayRequest.Status

LIST_PAGE = 50
PLAN_PAGE = 100
ITEMS_PAGE = 100
AUDIT_SHOWN = 20
NOT_STARTED = (Status.PLANNED, Status.AWAITING_APPROVAL)
POLLING = (Status.QUEUED, Status.RUNNING)


def _replay(pk: int, *, with_plan: bool = True) -> ReplayRequest:
    """The replay, or 404. Without `with_plan` its plan (one JSON value, up to REPLAY_MAX_EVENTS
    events times their jobs) is left unread: the progress panel asks every second."""
    replays = ReplayRequest.objects.select_related("requested_by", "approved_by", "incident")
    return get_object_or_404(replays if with_plan else replays.defer("plan"), pk=pk)


def _detail_url(replay: ReplayRequest, *, changed: bool = False) -> str:
    url = reverse("replays:detail", args=[replay.pk])
    return f"{url}?changed=1" if changed else url


# --- List -----------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def replay_list(request: HttpRequest) -> HttpResponse:
    form = forms.ListFilterForm(request.GET or None)
    replays = ReplayRequest.objects.select_related("approved_by").defer("plan")
    status = form.cleaned_data.get("status") if form.is_bound and form.is_valid() else ""
    if status:
        replays = replays.filter(status=status)
    cursor = request.GET.get("cursor") or None
    page = keyset_page(replays, cursor=cursor, per_page=LIST_PAGE)
    for replay in page.rows:
        replay.described = services.selection_of(replay).describe()
    context = {
        "form": form,
        "page": page,
        "query": urlencode({"status": status}) if status else "",
        "status": status,
        # Sent back here with what was typed when a dry run could not be made (nothing lost).
        "dry_run_form": forms.DryRunFilterForm(
            initial={"filter": request.GET.get("filter", "")[:1000], "mode": _mode(request.GET.get("mode"))}
        ),
        "filter_help": forms.FILTER_HELP,
        "can_request": request.user.has_perm(REQUEST),
    }
    if request.htmx and cursor:
        return render(request, "integrations/replays/_list_rows.html", context)
    return render(request, "integrations/replays/list.html", context)


def _mode(value: str | None) -> str:
    return value if value in ReplayRequest.Mode.values else ReplayRequest.Mode.STORED


# --- A new dry run --------------------------------------------------------------------------


@require_POST
@require_perm(VIEW, REQUEST)
def replay_new(request: HttpRequest) -> HttpResponse:
    """The dry run of the events picked in the event log, or of a filter: nothing runs."""
    form = forms.NewReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"No dry run: {_form_errors(form)}")
        return redirect(_back(request))
    data = form.cleaned_data
    try:
        selection = for_filter(data["filter"]) if data["filter"] else for_events(data["event_ids"])
        replay = services.check_replay(selection=selection, mode=data["mode"], by=request.user)
    except (SelectionError, services.ReplayError) as exc:
        messages.error(request, f"No dry run: {exc}")
        return redirect(_back(request))
    return redirect("replays:detail", pk=replay.pk)


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _back(request: HttpRequest) -> str:
    """The page the form was on (a path on this site), else the replay list; back on the list,
    the filter and mode typed are filled in again."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if not (target.startswith("/") and safe):
        target = reverse("replays:list")
    if target == reverse("replays:list") and request.POST.get("filter"):
        again = {"filter": request.POST["filter"][:1000], "mode": _mode(request.POST.get("mode"))}
        target = f"{target}?{urlencode(again)}"
    return target


# --- Detail: the dry run, its approval and its progress --------------------------------------


@require_GET
@require_perm(VIEW)
def replay_detail(request: HttpRequest, pk: int) -> HttpResponse:
    replay = _replay(pk)
    params = forms.PlanFilterForm(request.GET or None)
    summary = replay.summary or {}
    context = {
        "skips_by_reason": list((summary.get("skips_by_reason") or {}).items()),
        "described": services.selection_of(replay).describe(),
        "mode_words": forms.MODE_WORDS.get(replay.mode, ""),
        "limits": services.approval_limits(),
        "changed": request.GET.get("changed") == "1" and replay.status == Status.PLANNED,
        **_actions_context(request, replay),
        **_plan_context(request, replay, params),
        **_items_context(request, replay, params),
        **_progress_context(replay),
        **_audit_context(replay),
    }
    return render(request, "integrations/replays/detail.html", context)


def _actions_context(request: HttpRequest, replay: ReplayRequest) -> dict:
    """What the person may do next: confirm (planned), approve (awaiting approval, an admin who
    did not ask), cancel (anything not finished), dry-run again."""
    user = request.user
    can_request = user.has_perm(REQUEST)
    summary = replay.summary or {}
    is_requester = replay.requested_by_id is not None and replay.requested_by_id == user.pk
    planned, awaiting = replay.status == Status.PLANNED, replay.status == Status.AWAITING_APPROVAL
    return {
        "replay": replay,
        "summary": summary,
        "nothing_to_run": not summary.get("jobs_to_run"),
        "is_requester": is_requester,
        "run_form": forms.RunForm(initial={"plan_hash": replay.plan_hash}) if can_request and planned else None,
        "approve_form": forms.ApproveForm(initial={"plan_hash": replay.plan_hash})
        if awaiting and user.has_perm(APPROVE) and not is_requester
        else None,
        "cancel_form": forms.CancelForm() if can_request and replay.status not in ReplayRequest.FINISHED else None,
        "can_replan": can_request,
    }


def _query(request: HttpRequest, *, drop: str) -> str:
    """The page's query string without `drop` (a page number) and the one-off `changed` note."""
    params = request.GET.copy()
    for name in (drop, "changed"):
        params.pop(name, None)
    return params.urlencode()


def _plan_context(request: HttpRequest, replay: ReplayRequest, params: forms.PlanFilterForm) -> dict:
    """One page of the plan (PLAN_PAGE entries), filtered by decision and by the check that
    decided. The plan is one JSON value already loaded: no query, whatever its size."""
    decision, kind = params.value("decision"), params.value("kind")
    entries = replay.plan or []
    kinds = Counter(entry["kind"] for entry in entries)
    if decision:
        entries = [entry for entry in entries if entry["decision"] == decision]
    if kind:
        entries = [entry for entry in entries if entry["kind"] == kind]
    page = Paginator(entries, PLAN_PAGE).get_page(params.value("page") or 1)
    page.object_list = [{**entry, "kind_label": KINDS.get(entry["kind"], entry["kind"])} for entry in page.object_list]
    return {
        "plan_page": page,
        "plan_filters": params,
        "plan_decision": decision or "",
        "plan_kind": kind or "",
        "plan_kinds": [(name, KINDS.get(name, name), count) for name, count in sorted(kinds.items())],
        "plan_total": len(replay.plan or []),
        "plan_query": _query(request, drop="page"),
        "RUN": RUN,
    }


def _items_context(request: HttpRequest, replay: ReplayRequest, params: forms.PlanFilterForm) -> dict:
    """Per event the run covers: its status, what happened and what it waits for (once started)."""
    if replay.status in NOT_STARTED:
        return {"items_page": None}
    items = replay.items.select_related("event").order_by("id")
    if status := params.value("item_status"):
        items = items.filter(status=status)
    page = Paginator(items, ITEMS_PAGE).get_page(params.value("items_page") or 1)
    return {
        "items_page": page,
        "item_status": status or "",
        "item_statuses": ReplayItem.Status.choices,
        "items_query": _query(request, drop="items_page"),
    }


def _progress_context(replay: ReplayRequest) -> dict:
    counts = {} if replay.status in NOT_STARTED else waiting_counts(replay)
    return {
        "replay": replay,
        "counts": counts,
        "waiting": counts.get("pending", 0) + counts.get("claimed", 0),
        "polling": replay.status in POLLING,
        "started": replay.status not in NOT_STARTED,
    }


def _audit_context(replay: ReplayRequest) -> dict:
    entries = list(
        AuditEntry.objects.for_object(replay).select_related("target_type").order_by("-id")[: AUDIT_SHOWN + 1]
    )
    return {"audit_entries": entries[:AUDIT_SHOWN], "audit_more": len(entries) > AUDIT_SHOWN}


@require_GET
@require_perm(VIEW)
def replay_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress panel alone (htmx): it polls itself every second while the replay is queued
    or running, and the final panel (done, cancelled) carries no trigger, so polling stops."""
    replay = _replay(pk, with_plan=False)
    context = {**_progress_context(replay), "oob": bool(request.htmx)}
    if request.htmx and replay.status in ReplayRequest.FINISHED:
        # The last poll: what may be done next and each event's result change too (out of band).
        context |= {
            **_actions_context(request, replay),
            **_items_context(request, replay, forms.PlanFilterForm()),
            "final": True,
        }
    return render(request, "integrations/replays/_progress.html", context)


# --- Actions --------------------------------------------------------------------------------


@require_POST
@require_perm(VIEW, REQUEST)
def replay_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Run exactly the plan shown (its hash), for a reason: queued, or waiting for an admin."""
    replay = _replay(pk)
    form = forms.RunForm(request.POST)
    if not form.is_valid():
        if "reason" in form.errors:
            messages.error(request, "Not run: say why you run this replay (kept on the replay and in the audit trail).")
        else:
            messages.error(request, "Not run: the form did not say which plan it confirms. Reload the page.")
        return redirect(_detail_url(replay))
    try:
        replay = services.do_replay(
            replay,
            by=request.user,
            reason=form.cleaned_data["reason"],
            plan_hash=form.cleaned_data["plan_hash"],
            request=request,
        )
    except services.PlanChanged as exc:
        messages.warning(request, f"Not run: {exc}.")
        return redirect(_detail_url(replay, changed=True))
    except (services.ReplayError, SelectionError) as exc:
        messages.error(request, f"Not run: {exc}")
        return redirect(_detail_url(replay))
    if replay.status == Status.AWAITING_APPROVAL:
        messages.info(
            request,
            f"Waiting for an admin's approval ({'; '.join(replay.approval_reasons)}): another admin approves it "
            "on this page, and it starts then.",
        )
    elif replay.status == Status.DONE:
        messages.success(request, "Nothing ran: every job was skipped in the plan.")
    else:
        messages.success(
            request,
            f"Queued: {replay.items_total} event{'s' * (replay.items_total != 1)} in the worker's replay lane "
            "(live events keep priority). The progress below updates itself.",
        )
    return redirect(_detail_url(replay))


@require_POST
@require_perm(VIEW, APPROVE)
def replay_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin other than the requester approves exactly the plan shown; it starts at once."""
    replay = _replay(pk)
    form = forms.ApproveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not approved: the form did not say which plan it approves. Reload the page.")
        return redirect(_detail_url(replay))
    try:
        services.approve_replay(replay, by=request.user, plan_hash=form.cleaned_data["plan_hash"], request=request)
    except services.PlanChanged as exc:
        messages.warning(request, f"Not approved: {exc}.")
        return redirect(_detail_url(replay, changed=True))
    except (services.ReplayError, SelectionError) as exc:
        messages.error(request, f"Not approved: {exc}")
        return redirect(_detail_url(replay))
    messages.success(request, f"Approved: queued in the worker's replay lane (requested by {replay.requested_label}).")
    return redirect(_detail_url(replay))


@require_POST
@require_perm(VIEW, REQUEST)
def replay_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    replay = _replay(pk, with_plan=False)
    form = forms.CancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not cancelled: say why you cancel it (kept in the audit trail).")
        return redirect(_detail_url(replay))
    try:
        cancelled = services.cancel_replay(replay, by=request.user, reason=form.cleaned_data["reason"], request=request)
    except services.ReplayError as exc:
        messages.error(request, f"Not cancelled: {exc}")
        return redirect(_detail_url(replay))
    if cancelled:
        messages.success(request, "Cancelled: nothing more runs for it (an event being replayed right now finishes).")
    else:
        messages.error(request, "Not cancelled: it changed meanwhile (someone else moved it on). Reloaded.")
    return redirect(_detail_url(replay))


@require_POST
@require_perm(VIEW, REQUEST)
def replay_replan(request: HttpRequest, pk: int) -> HttpResponse:
    """A new dry run of the same selection and mode, on the state now (this one stays as it was)."""
    replay = _replay(pk)
    try:
        again = services.check_replay(
            selection=services.selection_of(replay), mode=replay.mode, by=request.user, incident=replay.incident
        )
    except (SelectionError, services.ReplayError) as exc:
        messages.error(request, f"No new dry run: {exc}")
        return redirect(_detail_url(replay))
    messages.info(
        request, f"Dry run {again.pk} of the same selection, on the state now (replay {replay.pk} is unchanged)."
    )
    return redirect("replays:detail", pk=again.pk)
