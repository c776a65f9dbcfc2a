"""The worksheet pages: the list, a new worksheet, the detail page (the plan with its blast radius,
the rows with both sides' values and a decision form each, the actions, the progress panel that
polls itself while the worker compares or applies, the steps), and the CSV export.

Views stay thin: every change goes through `incidents.worksheets.services`, which checks the
state, the permission and the maker-checker rule, and says in words why it refuses. The
permission checks here (`require_perm`) are the first gate; the templates only hide what a role
cannot do.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from console.access import require_perm
from console.models import AuditEntry
from console.pagination import keyset_page
from incidents.worksheets import forms, services
from incidents.worksheets.models import Worksheet, WorksheetRow

VIEW = "worksheets.view_worksheet"
PREPARE = services.PREPARE
APPROVE = services.APPROVE
APPLY = services.APPLY
State = Worksheet.State
Row = WorksheetRow

LIST_PAGE = 50
ROWS_PAGE = 50
AUDIT_SHOWN = 20
NOT_THE_SAME = [kind for kind in Row.Kind.values if kind not in (Row.Kind.SAME, Row.Kind.PENDING)]
SIDES = {Row.Proposal.WRITE_SHOPIFY: "Shopify", Row.Proposal.WRITE_PLATFORM: "the platform"}


def _worksheet(pk: int) -> Worksheet:
    people = ("shop", "prepared_by", "submitted_by", "approved_by", "applied_by", "incident", "rollback_of")
    return get_object_or_404(Worksheet.objects.select_related(*people), pk=pk)


def _detail_url(worksheet: Worksheet) -> str:
    return reverse("worksheets:detail", args=[worksheet.pk])


def _refused(request: HttpRequest, worksheet: Worksheet, what: str, error: Exception) -> HttpResponse:
    """A refusal on the server (the preparer approving, a role without the right): 403, with why."""
    context = {"worksheet": worksheet, "what": what, "reason": str(error) or "Your role doesn't include this."}
    return render(request, "worksheets/refused.html", context, status=403)


# --- List -----------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def worksheet_list(request: HttpRequest) -> HttpResponse:
    form = forms.ListFilterForm(request.GET or None)
    applied = form.filters()
    worksheets = Worksheet.objects.select_related("shop", "prepared_by", "approved_by", "incident").annotate(
        row_count=Count("rows"), differing=Count("rows", filter=Q(rows__kind__in=NOT_THE_SAME))
    )
    if state := applied.get("state"):
        worksheets = worksheets.filter(state=state)
    if shop := applied.get("shop"):
        worksheets = worksheets.filter(shop=shop)
    if incident := applied.get("incident"):
        worksheets = worksheets.filter(incident=incident)
    cursor = request.GET.get("cursor") or None
    page = keyset_page(worksheets, cursor=cursor, per_page=LIST_PAGE)
    query = urlencode(
        {
            name: value
            for name, value in (
                ("state", state),
                ("shop", shop.domain if shop else ""),
                ("incident", incident.pk if incident else ""),
            )
            if value
        }
    )
    context = {"form": form, "page": page, "query": query, "filtered": bool(applied)}
    if request.htmx and cursor:
        return render(request, "worksheets/_list_rows.html", context)
    return render(request, "worksheets/list.html", context)


# --- New ------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@require_perm(VIEW, PREPARE)
def worksheet_new(request: HttpRequest) -> HttpResponse:
    """GET: the form (htmx with `resource`: only its field checkboxes). POST: create the worksheet
    from the list given, start its compare on the worker, and go to it."""
    if request.method == "GET":
        form = forms.NewWorksheetForm(initial={"resource": request.GET.get("resource") or "products"})
        if request.htmx and "resource" in request.GET:
            return render(request, "worksheets/_fields.html", {"form": form})
        return render(request, "worksheets/new.html", {"form": form})
    form = forms.NewWorksheetForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "worksheets/new.html", {"form": form})
    try:
        worksheet = services.create_worksheet(**form.service_kwargs(), by=request.user, request=request)
    except services.WorksheetError as error:
        form.add_error(None, str(error))
        return render(request, "worksheets/new.html", {"form": form})
    try:
        services.start_compare(worksheet, by=request.user, request=request)
    except services.WorksheetError as error:
        messages.error(request, f"Created, but the compare did not start: {error}")
        return redirect(_detail_url(worksheet))
    worksheet.refresh_from_db()
    if worksheet.progress_step:
        messages.success(request, f"Worksheet #{worksheet.pk} created: comparing its records on the worker.")
    else:
        messages.success(request, f"Worksheet #{worksheet.pk} created and compared: review its rows below.")
    return redirect(_detail_url(worksheet))


# --- Detail ---------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def worksheet_detail(request: HttpRequest, pk: int) -> HttpResponse:
    worksheet = _worksheet(pk)
    params = forms.RowFilterForm(request.GET or None)
    context = {
        **_head_context(request, worksheet),
        **_rows_context(request, worksheet, params),
        "steps": list(worksheet.steps.order_by("at", "id")),
        **_audit_context(worksheet),
    }
    return render(request, "worksheets/detail.html", context)


def _head_context(request: HttpRequest, worksheet: Worksheet) -> dict:
    """The header, the blast radius and what the person may do next: the parts a row decision
    (htmx) sends again out of band."""
    user = request.user
    state = worksheet.state
    running = bool(worksheet.progress_step)
    is_preparer = worksheet.prepared_by_id == user.pk
    can_prepare, can_approve, can_apply = user.has_perm(PREPARE), user.has_perm(APPROVE), user.has_perm(APPLY)
    failed = worksheet.rows.filter(result=Row.Result.FAILED).count() if state == State.PARTIALLY_APPLIED else 0
    applied_rows = (
        worksheet.rows.filter(result=Row.Result.APPLIED).count()
        if state in (State.APPLIED, State.PARTIALLY_APPLIED)
        else 0
    )
    review = state == State.SUBMITTED and can_approve and not is_preparer
    blast = services.blast_radius(worksheet) if state != State.DRAFT else None
    if blast is not None:
        labels = dict(Row.Proposal.choices) | {"pending": "not compared"}
        blast["proposal_words"] = [(labels.get(name, name), n) for name, n in sorted(blast["proposals"].items())]
    return {
        "worksheet": worksheet,
        "blast": blast,
        "running": running,
        "can_decide": can_prepare and state in Worksheet.EDITABLE,
        "can_compare": can_prepare and state in (State.DRAFT, State.COMPARED, State.REJECTED) and not running,
        "can_submit": can_prepare and state == State.COMPARED,
        "approve_form": forms.ApproveForm(initial={"plan_hash": worksheet.plan_hash}) if review else None,
        "reject_form": forms.RejectForm() if review else None,
        "waiting_for_other_admin": state == State.SUBMITTED and is_preparer,
        "can_apply": can_apply and state == State.APPROVED,
        "failed_rows": failed,
        "can_retry": can_apply and failed > 0,
        "can_rollback": can_prepare and applied_rows > 0,
        "applied_rows": applied_rows,
        "rollbacks": list(worksheet.rollbacks.order_by("id").only("id", "state", "rollback_of_id")),
    }


def _rows_context(request: HttpRequest, worksheet: Worksheet, params: forms.RowFilterForm) -> dict:
    rows = worksheet.rows.select_related("decided_by").order_by("position")
    for name in ("kind", "proposal", "result"):
        if value := params.value(name):
            rows = rows.filter(**{name: value})
    page = Paginator(rows, ROWS_PAGE).get_page(params.value("page") or 1)
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "rows_page": page,
        "row_views": [_row_view(row, worksheet) for row in page.object_list],
        "row_filters": params,
        "rows_query": query.urlencode(),
        "rows_filtered": any(params.value(name) for name in ("kind", "proposal", "result")),
        "page_number": page.number,
    }


def _shown(value):
    """A stored value as text for the page (the template escapes it); None stays None."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _row_view(row: WorksheetRow, worksheet: Worksheet, *, form=None, error: str = "") -> dict:
    """One row as the page shows it: per field both sides, the owner, whether they differ, what
    apply writes, and after apply the before and after values."""
    side = row.side
    writes = row.values_to_write()
    before, after = row.before or {}, row.after or {}
    fields = [
        {
            "name": f["name"],
            "shopify": _shown(f.get("shopify")),
            "platform": _shown(f.get("platform")),
            "owner": f.get("owner") or "unknown",
            "differs": bool(f.get("differs")),
            "writes": f["name"] in writes,
            "written": _shown(writes.get(f["name"])),
            "before": _shown(before.get(f["name"])) if f["name"] in before else None,
            "after": _shown(after.get(f["name"])) if f["name"] in after else None,
        }
        for f in row.fields or []
    ]
    if form is None:
        initial = {"decision": row.decision, "override_side": row.override_side, "note": row.note}
        initial |= {f"value_{name}": _shown(value) for name, value in (row.override_values or {}).items()}
        form = forms.DecisionForm(initial=initial, worksheet=worksheet, auto_id=False)
    return {
        "row": row,
        "fields": fields,
        "side": side,
        "side_label": SIDES.get(side, ""),
        "has_results": bool(before or after),
        "form": form,
        "value_inputs": [form[f"value_{name}"] for name in worksheet.fields],
        "error": error,
    }


def _audit_context(worksheet: Worksheet) -> dict:
    entries = list(
        AuditEntry.objects.for_object(worksheet).select_related("target_type").order_by("-id")[: AUDIT_SHOWN + 1]
    )
    return {"audit_entries": entries[:AUDIT_SHOWN], "audit_more": len(entries) > AUDIT_SHOWN}


@require_GET
@require_perm(VIEW)
def worksheet_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress panel alone (htmx), polled every second while a compare or an apply runs.
    While applying it also settles the rows queued to Shopify (as the minute schedule does), so
    the page finishes on its own. Once the step is over the page reloads, since the state, the
    rows and the actions all changed."""
    worksheet = get_object_or_404(Worksheet.objects.select_related("shop"), pk=pk)
    if worksheet.state == State.APPLYING:
        services.settle(worksheet)
    if request.htmx and not worksheet.progress_step and request.GET.get("polling"):
        return HttpResponseClientRefresh()
    return render(
        request, "worksheets/_progress.html", {"worksheet": worksheet, "running": bool(worksheet.progress_step)}
    )


# --- Row decisions --------------------------------------------------------------------------


@require_POST
@require_perm(VIEW, PREPARE)
def row_decide(request: HttpRequest, pk: int, row_pk: int) -> HttpResponse:
    """Accept, skip or override one row. htmx: the row again (with the refusal, if any), and the
    header, blast radius and actions out of band (the plan hash changed; an edit after submission
    or approval sent it back to review). Without htmx: back to the page with a message."""
    worksheet = _worksheet(pk)
    row = get_object_or_404(worksheet.rows.select_related("worksheet"), pk=row_pk)
    form = forms.DecisionForm(request.POST, worksheet=worksheet, auto_id=False)
    error = ""
    if not form.is_valid():
        error = " ".join(f"{name}: {e}" for name, errors in form.errors.items() for e in errors)
    else:
        try:
            row = services.decide_row(
                row,
                by=request.user,
                decision=form.cleaned_data["decision"],
                note=form.cleaned_data["note"],
                override_side=form.cleaned_data["override_side"],
                override_values=form.override_values() or None,
                request=request,
            )
        except services.WorksheetError as exc:
            error = str(exc)
        except PermissionDenied as exc:
            if not request.htmx:
                return _refused(request, worksheet, "change this row", exc)
            error = str(exc) or "Your role doesn't include this."
    if not request.htmx:
        if error:
            messages.error(request, f"Row {row.position} not changed: {error}")
        else:
            messages.success(request, f"Row {row.position}: {row.get_decision_display().lower()}.")
        page = request.POST.get("page", "")
        return redirect(f"{_detail_url(worksheet)}{f'?page={page}' if page.isdigit() else ''}#row-{row.pk}")
    worksheet.refresh_from_db()
    row.refresh_from_db()
    context = {
        **_head_context(request, worksheet),
        "rv": _row_view(row, worksheet, form=form if error else None, error=error),
        "page_number": request.POST.get("page", ""),
        "oob": True,
        "saved": not error,
    }
    return render(request, "worksheets/_row_response.html", context)


# --- Actions --------------------------------------------------------------------------------


def _act(request: HttpRequest, pk: int, what: str, action, done: str) -> HttpResponse:
    """Run one service action (it returns the worksheet to show next); a refusal in words comes back as a message, a permission refusal
    (the preparer approving, say) as a 403 page saying why."""
    worksheet = _worksheet(pk)
    try:
        target = action(worksheet)
    except PermissionDenied as error:
        return _refused(request, worksheet, what, error)
    except services.WorksheetError as error:
        messages.error(request, f"Not {done}: {error}")
        return redirect(_detail_url(worksheet))
    return redirect(_detail_url(target))


@require_POST
@require_perm(VIEW, PREPARE)
def worksheet_compare(request: HttpRequest, pk: int) -> HttpResponse:
    def action(worksheet):
        services.start_compare(worksheet, by=request.user, request=request)
        messages.success(request, "Comparing again: every row is read afresh and its decision reset.")
        return worksheet

    return _act(request, pk, "compare it again", action, "compared again")


@require_POST
@require_perm(VIEW, PREPARE)
def worksheet_submit(request: HttpRequest, pk: int) -> HttpResponse:
    def action(worksheet):
        services.submit(worksheet, by=request.user, request=request)
        messages.success(request, "Submitted: an admin other than the preparer approves or rejects it.")
        return worksheet

    return _act(request, pk, "submit it", action, "submitted")


@require_POST
@require_perm(VIEW, APPROVE)
def worksheet_approve(request: HttpRequest, pk: int) -> HttpResponse:
    form = forms.ApproveForm(request.POST)

    def action(worksheet):
        if not form.is_valid():
            raise services.WorksheetError("the form did not say which plan it approves. Reload the page.")
        services.approve(
            worksheet,
            by=request.user,
            comment=form.cleaned_data["comment"],
            plan_hash_seen=form.cleaned_data["plan_hash"],
            request=request,
        )
        messages.success(request, "Approved: exactly this plan may now be applied.")
        return worksheet

    return _act(request, pk, "approve it", action, "approved")


@require_POST
@require_perm(VIEW, APPROVE)
def worksheet_reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = forms.RejectForm(request.POST)

    def action(worksheet):
        if not form.is_valid():
            raise services.WorksheetError("say why it is rejected: the preparer needs to know what to change.")
        services.reject(worksheet, by=request.user, comment=form.cleaned_data["comment"], request=request)
        messages.success(request, "Rejected: the preparer can change it and compare it again.")
        return worksheet

    return _act(request, pk, "reject it", action, "rejected")


@require_POST
@require_perm(VIEW, APPLY)
def worksheet_apply(request: HttpRequest, pk: int) -> HttpResponse:
    def action(worksheet):
        if worksheet.state != State.APPROVED:
            raise services.WorksheetError(
                f"only an approved worksheet can be applied; this one is {worksheet.get_state_display().lower()}."
            )
        services.start_apply(worksheet, by=request.user, request=request)
        messages.success(request, "Applying on the worker: each row is re-read first and skipped if it changed.")
        return worksheet

    return _act(request, pk, "apply it", action, "applied")


@require_POST
@require_perm(VIEW, APPLY)
def worksheet_retry(request: HttpRequest, pk: int) -> HttpResponse:
    def action(worksheet):
        if worksheet.state != State.PARTIALLY_APPLIED:
            raise services.WorksheetError("only a partially applied worksheet has failed rows to retry.")
        services.start_apply(worksheet, by=request.user, request=request)
        messages.success(request, "Retrying the failed rows only, on the worker.")
        return worksheet

    return _act(request, pk, "retry its failed rows", action, "retried")


@require_POST
@require_perm(VIEW, PREPARE)
def worksheet_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    def action(worksheet):
        back = services.rollback(worksheet, by=request.user, request=request)
        messages.success(
            request,
            f"Rollback worksheet #{back.pk} made from the before-values of #{worksheet.pk}: review it, submit it, "
            "and another admin approves it before anything is written.",
        )
        return back

    return _act(request, pk, "roll it back", action, "rolled back")


# --- Export ---------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def worksheet_export(request: HttpRequest, pk: int) -> HttpResponse:
    worksheet = _worksheet(pk)
    response = HttpResponse(services.export_csv(worksheet), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="worksheet-{worksheet.pk}-{worksheet.state}.csv"'
    return response
