from django.contrib import admin

from console.admin import ReadOnlyAdminMixin
from incidents.models import Incident, IncidentUpdate


class IncidentUpdateInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = IncidentUpdate
    extra = 0
    fields = ("created_at", "audience", "confirmed", "body", "author")
    readonly_fields = fields


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title", "severity", "status", "opened_at")
    list_filter = ("severity", "status")
    readonly_fields = ("title", "severity", "status", "opened_by", "opened_at", "resolved_at")
    inlines = [IncidentUpdateInline]
