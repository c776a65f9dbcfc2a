from django.urls import path

from integrations.replay import runbook_views, views

app_name = "replays"
urlpatterns = [
    path("", views.replay_list, name="list"),
    path("new/", views.replay_new, name="new"),
    path("<int:pk>/", views.replay_detail, name="detail"),
    path("<int:pk>/progress/", views.replay_progress, name="progress"),
    path("<int:pk>/run/", views.replay_run, name="run"),
    path("<int:pk>/approve/", views.replay_approve, name="approve"),
    path("<int:pk>/cancel/", views.replay_cancel, name="cancel"),
    path("<int:pk>/dry-run-again/", views.replay_replan, name="replan"),
    path("runbook/", runbook_views.runbook, name="runbook"),
    path("handlers/", runbook_views.handler_list, name="handlers"),
    path("handlers/switch/", runbook_views.handler_switch, name="handler_switch"),
]
