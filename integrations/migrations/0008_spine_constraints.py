import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("integrations", "0007_split_statuses_data")]

    operations = [
        migrations.RemoveField(
            model_name="attempt",
            name="replay",
        ),
        migrations.RemoveField(
            model_name="privacyrequest",
            name="proof",
        ),
        migrations.RemoveField(
            model_name="workerheartbeat",
            name="owner",
        ),
        migrations.RemoveConstraint(
            model_name="attempt",
            name="integrations_attempt_unique_number",
        ),
        migrations.RemoveConstraint(
            model_name="fulfillmentnotification",
            name="integrations_fulfillment_once",
        ),
        migrations.RemoveConstraint(
            model_name="job",
            name="integrations_job_unique_per_event",
        ),
        migrations.RemoveConstraint(
            model_name="platformcustomer",
            name="integrations_customer_unique",
        ),
        migrations.RemoveConstraint(
            model_name="platforminventorylevel",
            name="integrations_level_unique",
        ),
        migrations.RemoveConstraint(
            model_name="platformorder",
            name="integrations_order_unique",
        ),
        migrations.RemoveConstraint(
            model_name="platformproduct",
            name="integrations_product_unique",
        ),
        migrations.RemoveConstraint(
            model_name="platformvariant",
            name="integrations_variant_unique",
        ),
        migrations.RemoveConstraint(
            model_name="savedview",
            name="integrations_savedview_unique_name",
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="int_event_claimed_idx",
        ),
        migrations.RemoveIndex(
            model_name="job",
            name="int_job_retry_idx",
        ),
        migrations.AlterField(
            model_name="attempt",
            name="finished_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="attempt",
            name="outcome",
            field=models.CharField(choices=[("succeeded", "Succeeded"), ("failed", "Failed")], max_length=16),
        ),
        migrations.AlterField(
            model_name="event",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("claimed", "Being processed"),
                    ("retry_wait", "Waiting to retry"),
                    ("processed", "Processed"),
                    ("failed", "Failed"),
                    ("ignored", "Ignored"),
                ],
                default="queued",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("retry_wait", "Waiting to retry"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="workerheartbeat",
            name="name",
            field=models.CharField(max_length=100, unique=True),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(("status", "claimed")), fields=["claimed_at"], name="int_event_claimed_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(("status", "retry_wait")), fields=["next_attempt_at"], name="int_event_retry_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="attempt",
            constraint=models.UniqueConstraint(fields=("job", "number"), name="int_attempt_unique_number"),
        ),
        migrations.AddConstraint(
            model_name="attempt",
            constraint=models.CheckConstraint(
                condition=models.Q(("outcome__in", ["succeeded", "failed"])), name="int_attempt_outcome_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("outcome__in", ["accepted", "duplicate"]), ("event__isnull", False)),
                    models.Q(("outcome__in", ["rejected", "too_large"]), ("event__isnull", True)),
                    _connector="OR",
                ),
                name="int_delivery_event_iff_stored",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["queued", "claimed", "retry_wait", "processed", "failed", "ignored"])
                ),
                name="int_event_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "claimed"), _negated=True),
                    models.Q(("claimed_at__isnull", False), models.Q(("claimed_by", ""), _negated=True)),
                    _connector="OR",
                ),
                name="int_event_claim_has_owner",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "retry_wait"), _negated=True),
                    ("next_attempt_at__isnull", False),
                    _connector="OR",
                ),
                name="int_event_retry_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "processed"), _negated=True),
                    models.Q(("processed_at__isnull", False), ("processed_count__gte", 1)),
                    _connector="OR",
                ),
                name="int_event_processed_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(("triage_state__in", ["open", "acknowledged", "resolved", "ignored"])),
                name="int_event_triage_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="fulfillmentnotification",
            constraint=models.UniqueConstraint(fields=("shop", "order_shopify_id"), name="int_fulfillment_once"),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(fields=("event", "name"), name="int_job_unique_per_event"),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "retry_wait", "succeeded", "failed"])),
                name="int_job_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "retry_wait"), _negated=True),
                    ("next_attempt_at__isnull", False),
                    _connector="OR",
                ),
                name="int_job_retry_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status__in", ["succeeded", "failed"]), _negated=True),
                    ("finished_at__isnull", False),
                    _connector="OR",
                ),
                name="int_job_finished_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="platformcustomer",
            constraint=models.UniqueConstraint(fields=("shop", "shopify_id"), name="int_customer_unique"),
        ),
        migrations.AddConstraint(
            model_name="platforminventorylevel",
            constraint=models.UniqueConstraint(
                fields=("shop", "inventory_item_id", "location_id"), name="int_level_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="platformorder",
            constraint=models.UniqueConstraint(fields=("shop", "shopify_id"), name="int_order_unique"),
        ),
        migrations.AddConstraint(
            model_name="platformproduct",
            constraint=models.UniqueConstraint(fields=("shop", "shopify_id"), name="int_product_unique"),
        ),
        migrations.AddConstraint(
            model_name="platformvariant",
            constraint=models.UniqueConstraint(fields=("shop", "shopify_id"), name="int_variant_unique"),
        ),
        migrations.AddConstraint(
            model_name="privacyrequest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("state", "completed"), _negated=True), ("completed_at__isnull", False), _connector="OR"
                ),
                name="int_privacy_completed_has_time",
            ),
        ),
        migrations.AddConstraint(
            model_name="savedview",
            constraint=models.UniqueConstraint(fields=("user", "name"), name="int_savedview_unique_name"),
        ),
        migrations.AddConstraint(
            model_name="shop",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["installed", "uninstalled"])), name="int_shop_state_valid"
            ),
        ),
    ]
