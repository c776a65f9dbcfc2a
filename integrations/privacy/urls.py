from django.urls import path

from integrations.privacy import views

app_name = "privacy"
urlpatterns = [
    path("", views.privacy_list, name="list"),
    path("<int:pk>/export.json", views.privacy_export, name="export"),
]
