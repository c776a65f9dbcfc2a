"""Incidents in the Django admin: read-only. Every change goes through `incidents.services` (the
timeline, the audit trail, the notifications) and the console's pages, never the admin."""

from django.contrib import admin

from console.admin import ReadOnlyAdminMixin
from incidents.models import (
    AffectedRecord,
    Incident,
    IncidentAction,
    IncidentStep,
    IncidentUpdate,
    Notification,
    NotificationList,
    SeverityChange,
)


class IncidentUpdateInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = IncidentUpdate
    extra = 0
    fields = ("created_at", "audience", "confirmed", "confirmed_by", "body", "author", "next_update_at")
    readonly_fields = fields


class IncidentActionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = IncidentAction
    extra = 0
    fields = ("kind", "title", "owner", "due_at", "done", "done_at")
    readonly_fields = fields


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "title", "severity", "status", "direction", "opened_at", "resolved_at")
    list_filter = ("severity", "status", "direction")
    search_fields = ("title", "public_title")
    # Linked events and calls are left out: there may be thousands (the console's page lists them).
    fields = (
        "title", "public_title", "summary", "direction", "severity", "severity_reasoning", "severity_overridden",
        "status", "strategy", "strategy_reason", "lead", "opened_by", "opened_at", "detected_at", "started_at",
        "identified_at", "contained_at", "monitoring_at", "resolved_at", "resolve_override_reason",
        "next_update_due_at", "customer_impact", "customer_advice", "workaround",
    )  # fmt: skip
    readonly_fields = fields
    inlines = [IncidentActionInline, IncidentUpdateInline]


@admin.register(IncidentStep)
class IncidentStepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "incident", "kind", "actor_label", "text")
    list_filter = ("kind",)
    list_select_related = ("incident",)
    raw_id_fields = ("incident", "actor")


@admin.register(SeverityChange)
class SeverityChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "incident", "source", "target", "rubric_severity", "overridden", "by_label")
    list_filter = ("target", "overridden")
    list_select_related = ("incident",)
    raw_id_fields = ("incident", "by")


@admin.register(IncidentAction)
class IncidentActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title", "incident", "kind", "owner", "due_at", "done")
    list_filter = ("kind", "done")
    list_select_related = ("incident", "owner")
    raw_id_fields = ("incident", "owner", "done_by", "created_by")


@admin.register(NotificationList)
class NotificationListAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("audience", "severity", "updated_at")
    list_filter = ("audience", "severity")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "incident", "kind", "audience", "status", "sent_at")
    list_filter = ("status", "kind", "audience")
    list_select_related = ("incident",)
    raw_id_fields = ("incident", "update")


@admin.register(AffectedRecord)
class AffectedRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "kind", "incident", "shop", "repair_state", "updated_at")
    list_filter = ("kind", "repair_state")
    search_fields = ("key", "email")
    list_select_related = ("incident", "shop")
    raw_id_fields = ("incident", "shop", "event", "worksheet_row")
