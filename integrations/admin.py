from django.contrib import admin

from integrations.models import Shop


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
    """Secrets are never shown here in full: the masked forms are read-only, and changes to them go
    through the console's secrets page so they are audited."""

    list_display = ("domain", "name", "state", "api_version", "queue_paused")
    search_fields = ("domain", "name")
    fields = (
        "domain",
        "name",
        "api_url",
        "api_version",
        "state",
        "queue_paused",
        "webhook_secret_masked",
        "previous_webhook_secret_masked",
        "access_token_masked",
    )
    readonly_fields = (
        "domain",
        "state",
        "queue_paused",
        "webhook_secret_masked",
        "previous_webhook_secret_masked",
        "access_token_masked",
    )

    def has_add_permission(self, request):
        return False  # registration needs a secret: use the console's "Register a shop" page

    def has_change_permission(self, request, obj=None):
        return False  # changes go through audited services, in the console

    def has_delete_permission(self, request, obj=None):
        return False
