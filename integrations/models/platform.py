"""The demo platform: the system that integrates with Shopify.

Jobs keep these in sync. Every record carries Shopify's `updated_at` so an older event never
overwrites newer state, whatever order deliveries arrive in.
"""

from django.db import models

from integrations.models.inbound import Event
from integrations.models.shops import Shop


class PlatformRecord(models.Model):
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    shopify_updated_at = models.DateTimeField()
    synced_at = models.DateTimeField(auto_now=True)
    last_event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        abstract = True


class PlatformCustomer(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    email = models.CharField(max_length=255, blank=True)
    first_name = models.CharField(max_length=255, blank=True)
    last_name = models.CharField(max_length=255, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    tags = models.TextField(blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="int_customer_unique")]

    def __str__(self) -> str:
        return self.gid


class PlatformOrder(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    name = models.CharField(max_length=64, blank=True)
    order_number = models.BigIntegerField(null=True, blank=True)
    email = models.CharField(max_length=255, blank=True)
    customer_shopify_id = models.BigIntegerField(null=True, blank=True)
    financial_status = models.CharField(max_length=32, blank=True)
    fulfillment_status = models.CharField(max_length=32, blank=True)
    total_price = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=8, blank=True)
    tags = models.TextField(blank=True)
    line_items = models.JSONField(default=list)
    shipping_address = models.JSONField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="int_order_unique")]

    def __str__(self) -> str:
        return self.name or self.gid


class PlatformProduct(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    handle = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32, blank=True)
    vendor = models.CharField(max_length=255, blank=True)
    tags = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="int_product_unique")]

    def __str__(self) -> str:
        return self.title or self.gid


class PlatformVariant(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    product_shopify_id = models.BigIntegerField()
    title = models.CharField(max_length=255, blank=True)
    sku = models.CharField(max_length=255, blank=True)
    price = models.CharField(max_length=32, blank=True)
    inventory_item_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="int_variant_unique")]

    def __str__(self) -> str:
        return self.sku or self.gid


class PlatformInventoryLevel(PlatformRecord):
    inventory_item_id = models.BigIntegerField()
    location_id = models.BigIntegerField()
    available = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "inventory_item_id", "location_id"], name="int_level_unique")
        ]

    def __str__(self) -> str:
        return f"item {self.inventory_item_id} @ {self.location_id}: {self.available}"


class FulfillmentNotification(models.Model):
    """The fulfillment queue was told about a paid order. At most one per order, ever: the
    unique constraint is what makes replays and worker crashes safe here."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    order_shopify_id = models.BigIntegerField()
    order_name = models.CharField(max_length=64, blank=True)
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "order_shopify_id"], name="int_fulfillment_once")]

    def __str__(self) -> str:
        return f"fulfill {self.order_name or self.order_shopify_id}"


class CustomerMessage(models.Model):
    """An email the platform sends a buyer (the mail service delivers it from this outbox). At
    most one per kind and record: the unique key (shop, kind, record) is what keeps a replay that
    races a live delivery, or a second replay, from emailing twice."""

    class Kind(models.TextChoices):
        SHIPPING_CONFIRMATION = "shipping_confirmation", "Shipping confirmation"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    record_gid = models.CharField(max_length=255, help_text="What it is about, e.g. the fulfillment.")
    order_shopify_id = models.BigIntegerField(null=True, blank=True)
    to_email = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "kind", "record_gid"], name="int_message_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.record_gid}"
