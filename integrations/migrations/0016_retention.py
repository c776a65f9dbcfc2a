import django.utils.timezone
from django.db import migrations, models


def schedule_retention(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="retention",
        defaults={"func": "integrations.tasks.run_retention", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def unschedule_retention(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="retention").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0015_replay"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="RetentionRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "trigger",
                    models.CharField(
                        choices=[("schedule", "Worker schedule"), ("command", "Command line")],
                        default="schedule",
                        max_length=16,
                    ),
                ),
                ("settings", models.JSONField(default=dict, help_text="The retention settings in force for this run.")),
                (
                    "steps",
                    models.JSONField(default=dict, help_text="What each step did: counts, batches, backlog left."),
                ),
                (
                    "cursors",
                    models.JSONField(default=dict, help_text="Highest attempt id examined, per attempt table."),
                ),
                ("errors", models.TextField(blank=True)),
            ],
            options={
                "indexes": [models.Index(fields=["started_at"], name="int_retention_started_idx")],
            },
        ),
        migrations.AddField(
            model_name="event",
            name="payload_purged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(("payload_purged_at__isnull", True)),
                fields=["received_at"],
                name="int_event_unpurged_idx",
            ),
        ),
        migrations.RunPython(schedule_retention, unschedule_retention),
    ]
