from django.contrib import admin

from console.admin import ReadOnlyAdminMixin
from integrations.models import Shop


@admin.register(Shop)
class ShopAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Secrets are never shown here in full, and every change goes through the console's audited
    pages (registration needs a secret: "Register a shop")."""

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
