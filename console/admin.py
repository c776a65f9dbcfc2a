from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin

from console import logins
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


if admin.site.is_registered(AccessAttempt):  # axes registers it (AXES_ENABLE_ADMIN); axes is listed before console
    admin.site.unregister(AccessAttempt)

    @admin.register(AccessAttempt)
    class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
        """axes' page of failed logins; deleting one lifts (part of) a lockout, audited in the admin's name."""

        def delete_model(self, request, obj):
            with logins.unlocking(by=request.user, reason="deleted in the Django admin", request=request):
                super().delete_model(request, obj)

        def delete_queryset(self, request, queryset):
            with logins.unlocking(by=request.user, reason="deleted in the Django admin", request=request):
                super().delete_queryset(request, queryset)
