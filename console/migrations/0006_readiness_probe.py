"""The one-row table /readyz writes to, to prove the database takes writes (console.readiness)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0005_roles_unlock_logins"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReadinessProbe",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("beat_at", models.DateTimeField()),
            ],
        ),
    ]
