"""A rejected request keeps only the start of its body, with the whole body's size and SHA-256;
times stored before the receiver and the worker checked their range are cleared.

PostgreSQL accepted times Python cannot hold (e.g. `0001-01-01T00:00:00+14:00`, which is 1 BC in
UTC), and every read of such a row then failed. The raw value is still in Delivery.headers or the
stored body; the typed column becomes empty (or, for a record's `shopify_updated_at`, which is
required, the nearest storable time, which keeps the "newer wins" order).
"""

from datetime import UTC, datetime

from django.db import migrations, models

# As integrations.inbound.values has them today (a migration keeps its own copy).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)

CLEARED = {"event": ("triggered_at", "resource_updated_at")}
CLAMPED = ("platformorder", "platformcustomer", "platformproduct", "platformvariant", "platforminventorylevel")


def clear_unreadable_times(apps, schema_editor):
    # Only PostgreSQL could store them: SQLite's adapter converts to UTC first and raised instead.
    if schema_editor.connection.vendor != "postgresql":
        return
    for model_name, fields in CLEARED.items():
        model = apps.get_model("integrations", model_name)
        for name in fields:
            out_of_range = models.Q(**{f"{name}__lt": EARLIEST}) | models.Q(**{f"{name}__gt": LATEST})
            model.objects.filter(out_of_range).update(**{name: None})
    for model_name in CLAMPED:
        model = apps.get_model("integrations", model_name)
        model.objects.filter(shopify_updated_at__lt=EARLIEST).update(shopify_updated_at=EARLIEST)
        model.objects.filter(shopify_updated_at__gt=LATEST).update(shopify_updated_at=LATEST)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0009_privacy_export_permission")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="body_sha256",
            field=models.CharField(blank=True, default="", help_text="Of the whole body, hex.", max_length=64),
        ),
        migrations.AddField(
            model_name="delivery",
            name="body_truncated",
            field=models.BooleanField(default=False, help_text="Only the start of the body is stored."),
        ),
        migrations.RunPython(clear_unreadable_times, migrations.RunPython.noop, elidable=True),
    ]
