from django.urls import path

from integrations.shops import ownership_views, views

app_name = "integrations"
urlpatterns = [
    path("", views.shop_list, name="shop_list"),
    path("new/", views.shop_create, name="shop_create"),
    path("<int:pk>/", views.shop_detail, name="shop_detail"),
    path("<int:pk>/edit/", views.shop_edit, name="shop_edit"),
    path("<int:pk>/ownership/", ownership_views.shop_ownership, name="ownership"),
    path("drift/", ownership_views.drift, name="drift"),
    path("<int:pk>/health/", views.shop_health, name="shop_health"),
    path("<int:pk>/health/check/", views.shop_health_check, name="shop_health_check"),
    path("<int:pk>/health/resubscribe/", views.shop_resubscribe, name="shop_resubscribe"),
    path("<int:pk>/reinstall/", views.shop_reinstall, name="shop_reinstall"),
    path("<int:pk>/secrets/", views.shop_secrets, name="shop_secrets"),
    path("<int:pk>/secrets/retire/", views.shop_retire_secret, name="shop_retire_secret"),
]
