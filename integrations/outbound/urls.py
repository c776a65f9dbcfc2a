from django.urls import path

from integrations.outbound import views

app_name = "outbound"
urlpatterns = [
    path("", views.outbound_index, name="index"),
    path("<int:pk>/", views.call_detail, name="detail"),
    path("<int:pk>/send-again/", views.send_again, name="send_again"),
    path("shops/<int:shop_id>/pause/", views.pause_shop, name="pause"),
    path("shops/<int:shop_id>/resume/", views.resume_shop, name="resume"),
]
