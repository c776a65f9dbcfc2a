from django.apps import AppConfig


class WorksheetsConfig(AppConfig):
    name = "incidents.worksheets"
    label = "worksheets"
    verbose_name = "Reconciliation worksheets"
    default_auto_field = "django.db.models.BigAutoField"
