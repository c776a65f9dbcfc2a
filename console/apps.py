from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete, post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        # Keep the role groups in step after every migrate and after a test-database flush
        # (which empties auth_group); the data migration alone would run only once.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="console.sync_roles")
        # The SQLite audit triggers ask this function whether `flush` is running (console/append_only.py).
        from console.append_only import register_sqlite_function

        connection_created.connect(register_sqlite_function, dispatch_uid="console.audit_sqlite_function")
        # Login lockouts (django-axes) and their early lifting go to the audit trail (console/logins.py).
        from axes.models import AccessAttempt
        from axes.signals import user_locked_out

        from console import logins

        user_locked_out.connect(logins.on_user_locked_out, dispatch_uid="console.audit_lockout")
        post_delete.connect(logins.on_attempt_deleted, sender=AccessAttempt, dispatch_uid="console.audit_unlock")


def _sync_roles(sender, apps=None, **kwargs):
    from django.apps import apps as global_apps

    from console.roles import sync_role_permissions

    # migrate passes the migration state's registry; flush sends none.
    sync_role_permissions(apps or global_apps)
