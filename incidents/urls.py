from django.urls import path

from incidents import board_views, lists_views, views

app_name = "incidents"
urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.incident_new, name="new"),
    path("<int:pk>/", views.incident_detail, name="detail"),
    path("<int:pk>/edit/", views.incident_edit, name="edit"),
    path("<int:pk>/severity/", views.incident_severity, name="severity"),
    path("<int:pk>/status/", views.incident_status, name="status"),
    path("<int:pk>/resolve/", views.incident_resolve, name="resolve"),
    path("<int:pk>/strategy/", views.incident_strategy, name="strategy"),
    path("<int:pk>/respond/<slug:response>/", views.incident_respond, name="respond"),
    path("<int:pk>/link/", views.incident_link, name="link"),
    path("<int:pk>/actions/", views.action_add, name="action_add"),
    path("<int:pk>/actions/<int:action_id>/done/", views.action_done, name="action_done"),
    path("<int:pk>/updates/", views.update_post, name="update_post"),
    path("<int:pk>/updates/<int:update_id>/confirm/", views.update_confirm, name="update_confirm"),
    path("<int:pk>/notifications/<int:notification_id>/send-again/", views.notification_send_again, name="send_again"),
    path("<int:pk>/affected/<int:record_id>/", views.affected_set, name="affected_set"),
    path("<int:pk>/summary.md", views.incident_summary, name="summary"),
    path("follow-ups/", lists_views.follow_ups, name="follow_ups"),
    path("notification-lists/", lists_views.notification_lists, name="notification_lists"),
    path("status/", board_views.status_board, name="status_board"),
    path("lookup/", board_views.lookup, name="lookup"),
]
