from django.urls import path

from integrations.shops import views

app_name = "integrations"
urlpatterns = [
    path("", views.shop_list, name="shop_list"),
    path("new/", views.shop_create, name="shop_create"),
    path("<int:pk>/", views.shop_detail, name="shop_detail"),
    path("<int:pk>/edit/", views.shop_edit, name="shop_edit"),
    path("<int:pk>/reinstall/", views.shop_reinstall, name="shop_reinstall"),
    path("<int:pk>/secrets/", views.shop_secrets, name="shop_secrets"),
    path("<int:pk>/secrets/retire/", views.shop_retire_secret, name="shop_retire_secret"),
]
