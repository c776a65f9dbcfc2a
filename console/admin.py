from django.contrib import admin

from console.models import AuditEntry


class ReadOnlyAdminMixin:
    """For models whose changes must go through the console's audited services (or never happen):
    the Django admin may list and show them, never add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the admin can list and view entries, never add, change or delete one."""

    list_display = ("created_at", "actor_label", "verb", "target_repr", "reason")
    list_filter = ("verb",)
    search_fields = ("actor_label", "verb", "target_repr", "target_id")
    actions = None
