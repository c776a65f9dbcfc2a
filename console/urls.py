from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from console import views
from console.metrics_view import metrics_view
from integrations.inbound.views import receive_webhook

admin.site.site_header = "Support console administration"
admin.site.site_title = "Support console"

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(r"^healthz/?$", views.healthz, name="healthz"),
    re_path(r"^readyz/?$", views.readyz, name="readyz"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    re_path(r"^webhooks/shopify/?$", receive_webhook, name="webhook_receiver"),
    path("audit/", views.audit_list, name="audit_list"),
    path("logins/lockouts/", views.login_lockouts, name="login_lockouts"),
    path("logins/unlock/", views.login_unlock, name="login_unlock"),
    path("audit/<str:app_label>/<str:model>/<str:object_id>/", views.audit_history, name="audit_history"),
    path("shops/", include("integrations.shops.urls")),
    path("events/", include("integrations.eventlog.urls")),
    path("outbound/", include("integrations.outbound.urls")),
    path("replays/", include("integrations.replay.urls")),
    path("incidents/", include("incidents.urls")),
    path("worksheets/", include("incidents.worksheets.urls")),
    path("privacy/", include("integrations.privacy.urls")),
    path("alerts/", include("console.alerts.urls")),
    path("admin/", admin.site.urls),
]
