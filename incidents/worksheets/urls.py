from django.urls import path

from incidents.worksheets import views

app_name = "worksheets"
urlpatterns = [
    path("", views.worksheet_list, name="list"),
    path("new/", views.worksheet_new, name="new"),
    path("<int:pk>/", views.worksheet_detail, name="detail"),
    path("<int:pk>/progress/", views.worksheet_progress, name="progress"),
    path("<int:pk>/export.csv", views.worksheet_export, name="export"),
    path("<int:pk>/rows/<int:row_pk>/decide/", views.row_decide, name="decide"),
    path("<int:pk>/compare/", views.worksheet_compare, name="compare"),
    path("<int:pk>/submit/", views.worksheet_submit, name="submit"),
    path("<int:pk>/approve/", views.worksheet_approve, name="approve"),
    path("<int:pk>/reject/", views.worksheet_reject, name="reject"),
    path("<int:pk>/apply/", views.worksheet_apply, name="apply"),
    path("<int:pk>/retry/", views.worksheet_retry, name="retry"),
    path("<int:pk>/rollback/", views.worksheet_rollback, name="rollback"),
]
