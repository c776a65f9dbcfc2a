from django.urls import reverse

# (label, url name, permission needed or None for any logged-in user)
NAVIGATION = [
    ("Dashboard", "dashboard", None),
    ("Events", "events:list", "integrations.view_event"),
    ("Outbound", "outbound:index", "integrations.view_outboundcall"),
    ("Replays", "replays:list", "integrations.view_replayrequest"),
    ("Runbook", "replays:runbook", "integrations.view_event"),
    ("Incidents", "incidents:list", "incidents.view_incident"),
    ("Worksheets", "worksheets:list", "worksheets.view_worksheet"),
    ("Status board", "incidents:status_board", "incidents.view_status_board"),
    ("Lookup", "incidents:lookup", "incidents.view_status_board"),
    ("Shops", "integrations:shop_list", "integrations.view_shop"),
    ("Privacy", "privacy:list", "integrations.view_privacyrequest"),
    ("Alerts", "alerts:list", "alerts.view_alert"),
    ("Audit trail", "audit_list", "console.view_auditentry"),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    current = request.resolver_match.view_name if request.resolver_match else ""
    items = [
        {"label": label, "url": reverse(name), "active": current == name}
        for label, name, perm in NAVIGATION
        if perm is None or user.has_perm(perm)
    ]
    return {"nav_items": items, "user_roles": sorted(g.name for g in user.groups.all())}
