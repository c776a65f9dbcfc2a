from django.db import migrations


def schedule_shop_health(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="shop-health-check",
        defaults={"func": "integrations.tasks.check_shops_health", "schedule_type": "I", "minutes": 15, "repeats": -1},
    )


def unschedule_shop_health(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="shop-health-check").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0013_api_health"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule_shop_health, unschedule_shop_health)]
