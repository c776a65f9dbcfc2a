from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        # Keep the role groups in step after every migrate and after a test-database flush
        # (which empties auth_group); the data migration alone would run only once.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="console.sync_roles")


def _sync_roles(sender, apps=None, **kwargs):
    from django.apps import apps as global_apps

    from console.roles import sync_role_permissions

    # migrate passes the migration state's registry; flush sends none.
    sync_role_permissions(apps or global_apps)
