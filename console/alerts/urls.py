from django.urls import path

from console.alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.alert_list, name="list"),
    path("silence/", views.silence, name="silence"),
    path("silences/<int:pk>/lift/", views.unsilence, name="unsilence"),
]
