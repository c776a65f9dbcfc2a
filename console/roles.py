"""The console's roles, as Django groups with explicit permissions.

The migrations call `sync_role_permissions`, so a fresh database and an upgraded one end with the
same groups; a test checks the groups against this table. Add a permission here and a migration
that calls `sync_role_permissions` when a new capability appears.
"""

SUPPORT = "support"
CUSTOMER_SERVICE = "customer_service"
ADMIN = "admin"
ROLES = (SUPPORT, CUSTOMER_SERVICE, ADMIN)

_CUSTOMER_SERVICE = {
    "incidents.view_status_board",
}
_SUPPORT = _CUSTOMER_SERVICE | {
    "console.view_auditentry",
    "integrations.view_shop",
    "integrations.view_event",
    "integrations.view_delivery",
    "integrations.view_job",
    "integrations.view_attempt",
    "integrations.triage_event",
    "integrations.view_privacyrequest",
    # Outbound calls: read them; enqueue, pause and resume a shop, send a failed call again.
    "integrations.view_outboundcall",
    "integrations.view_outboundattempt",
    "integrations.send_outbound",
    # API health: read the checks, holds, gaps, notices and ownership (running a check is a read).
    "integrations.view_healthcheck",
    "integrations.view_outboundhold",
    "integrations.view_subscriptiongap",
    "integrations.view_apinotice",
    "integrations.view_ownershiprule",
    "integrations.view_ownershipdrift",
    # Replays: dry-run and run them (a big one waits for an admin); disable or enable a handler.
    "integrations.view_replayrequest",
    "integrations.view_replayitem",
    "integrations.view_handlerswitch",
    "integrations.request_replay",
    # Worksheets: prepare, compare, review, submit and apply them (approval is an admin's).
    "worksheets.view_worksheet",
    "worksheets.view_worksheetrow",
    "worksheets.prepare_worksheet",
    "worksheets.apply_worksheet",
    "incidents.view_incident",
    "incidents.add_incident",
    "incidents.change_incident",
    "incidents.view_incidentupdate",
    "incidents.add_incidentupdate",
    "incidents.view_notification",
    # Alerts: read them; silence one for a time with a reason, and lift a silence (audited).
    "alerts.view_alert",
    "alerts.silence_alert",
}
_ADMIN = _SUPPORT | {
    "integrations.add_shop",
    "integrations.change_shop",
    "integrations.manage_shop_secrets",
    # Login lockouts (django-axes): see them, lift one early (console/logins.py, audited).
    "axes.view_accessattempt",
    "axes.delete_accessattempt",
    "integrations.export_privacy_data",
    # Who owns which data; override one non-owner write (audited).
    "integrations.manage_ownership",
    # Approve a replay above the approval threshold that someone else requested.
    "integrations.approve_replay",
    # Approve or reject a reconciliation worksheet someone else prepared.
    "worksheets.approve_worksheet",
    # Who hears about incidents of each severity, per audience.
    "incidents.manage_notification_lists",
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    SUPPORT: frozenset(_SUPPORT),
    CUSTOMER_SERVICE: frozenset(_CUSTOMER_SERVICE),
    ADMIN: frozenset(_ADMIN),
}


def sync_role_permissions(apps, schema_editor=None) -> None:
    """Create the role groups and give each exactly the permissions in ROLE_PERMISSIONS.

    Written for migrations: it uses the `apps` registry it is given. Permissions are created first
    (Django only creates them after the whole migrate run otherwise).
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, apps=apps)

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in sorted(perms):
            app_label, codename = dotted.split(".", 1)
            wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
