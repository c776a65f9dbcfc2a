"""Shops and the credentials our integration uses for each."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from console.secrets import mask_secret

DEFAULT_API_VERSION = "2026-10"

shop_domain_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
    "Enter the shop's permanent domain, like example-store.myshopify.com.",
)
api_version_validator = RegexValidator(
    r"^(\d{4}-(01|04|07|10)|unstable)$",
    "API versions look like 2026-10 (a quarter: -01, -04, -07 or -10) or 'unstable'.",
)


class Shop(models.Model):
    """A Shopify store the console supports, with the credentials our integration uses for it.

    Secrets are stored as given and shown masked everywhere. During a webhook-secret rotation the
    previous secret keeps verifying until `previous_secret_retire_at`.
    """

    class State(models.TextChoices):
        INSTALLED = "installed", "Installed"
        UNINSTALLED = "uninstalled", "Uninstalled"

    domain = models.CharField(max_length=255, unique=True, validators=[shop_domain_validator])
    name = models.CharField(max_length=200, blank=True)
    api_url = models.URLField(
        blank=True,
        help_text="Leave empty for the real Shopify host; set it to point the shop at the simulator.",
    )
    api_version = models.CharField(max_length=16, default=DEFAULT_API_VERSION, validators=[api_version_validator])
    webhook_secret = models.CharField(max_length=255)
    previous_webhook_secret = models.CharField(max_length=255, blank=True)
    previous_secret_retire_at = models.DateTimeField(null=True, blank=True)
    access_token = models.CharField(max_length=255, blank=True)
    # Expiring offline tokens (refreshed before they expire; see integrations.shops.tokens).
    client_id = models.CharField(max_length=255, blank=True, help_text="The app's client id, to refresh tokens.")
    refresh_token = models.CharField(max_length=255, blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    token_refreshed_at = models.DateTimeField(null=True, blank=True)
    token_problem = models.TextField(blank=True, help_text="Why the token cannot be used or refreshed, if so.")
    # The version Shopify last answered with (X-Shopify-API-Version), which may differ from api_version.
    answered_api_version = models.CharField(max_length=16, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INSTALLED)
    # When the app was last uninstalled or reinstalled (Shopify's time for the event that did it), so
    # an uninstall that arrives late, or is replayed, after a reinstall changes nothing.
    state_changed_at = models.DateTimeField(null=True, blank=True)
    queue_paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["installed", "uninstalled"]), name="int_shop_state_valid"
            )
        ]
        permissions = [("manage_shop_secrets", "Can set and rotate a shop's secrets and tokens")]

    def __str__(self) -> str:
        return self.domain

    @property
    def admin_base_url(self) -> str:
        return (self.api_url or f"https://{self.domain}").rstrip("/")

    def verifying_secrets(self, now=None) -> list[str]:
        """Secrets a webhook signature may be made with right now: current first."""
        now = now or timezone.now()
        secrets = [self.webhook_secret]
        if self.previous_webhook_secret and (
            self.previous_secret_retire_at is None or now < self.previous_secret_retire_at
        ):
            secrets.append(self.previous_webhook_secret)
        return secrets

    @property
    def webhook_secret_masked(self) -> str:
        return mask_secret(self.webhook_secret)

    @property
    def previous_webhook_secret_masked(self) -> str:
        return mask_secret(self.previous_webhook_secret)

    @property
    def access_token_masked(self) -> str:
        return mask_secret(self.access_token)

    @property
    def refresh_token_masked(self) -> str:
        return mask_secret(self.refresh_token)
