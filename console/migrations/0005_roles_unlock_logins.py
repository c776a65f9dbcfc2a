"""Admins see login lockouts and lift them early (django-axes' permissions, console/roles.py)."""

from django.db import migrations

from console.roles import sync_role_permissions


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0004_audit_append_only_everywhere"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(sync_role_permissions, migrations.RunPython.noop)]
