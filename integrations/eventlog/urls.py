from django.urls import path

from integrations.eventlog import views

app_name = "events"
urlpatterns = [
    path("", views.event_list, name="list"),
    path("poll/", views.event_poll, name="poll"),
    path("export.csv", views.event_export, name="export"),
    path("<int:pk>/", views.event_detail, name="detail"),
    path("<int:pk>/assign/", views.triage_assign, name="assign"),
    path("<int:pk>/tags/", views.triage_tags, name="tag"),
    path("<int:pk>/acknowledge/", views.triage_state, {"action": "acknowledge"}, name="acknowledge"),
    path("<int:pk>/resolve/", views.triage_state, {"action": "resolve"}, name="resolve"),
    path("<int:pk>/ignore/", views.triage_state, {"action": "ignore"}, name="ignore"),
    path("<int:pk>/reopen/", views.triage_state, {"action": "reopen"}, name="reopen"),
    path("<int:pk>/mark-failed/", views.set_status, {"action": "mark_failed"}, name="mark_failed"),
    path("<int:pk>/mark-ignored/", views.set_status, {"action": "mark_ignored"}, name="mark_ignored"),
    path("deliveries/<int:pk>/", views.delivery_detail, name="delivery"),
    path("views/", views.save_view, name="save_view"),
    path("views/<int:pk>/delete/", views.delete_view, name="delete_view"),
    path("failed-tasks/", views.failed_tasks, name="failed_tasks"),
]
