import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from console import roles
from console.management.commands.seed_demo import DEMO_SHOP_DOMAIN
from integrations.models import Shop


def _row_counts():
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.mark.django_db
def test_creates_users_roles_and_shop_and_second_run_changes_nothing(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo", "--password", "pw-demo-1234")
    User = get_user_model()
    expected = {
        "support": roles.SUPPORT,
        "service": roles.CUSTOMER_SERVICE,
        "admin": roles.ADMIN,
        "approver": roles.ADMIN,
    }
    for username, role in expected.items():
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password("pw-demo-1234")
        assert not user.is_superuser
    assert Shop.objects.get(domain=DEMO_SHOP_DOMAIN).api_url.startswith("http://127.0.0.1:8001/")

    counts = _row_counts()
    passwords = dict(User.objects.values_list("username", "password"))
    call_command("seed_demo", "--password", "pw-demo-1234")
    assert _row_counts() == counts
    assert dict(User.objects.values_list("username", "password")) == passwords


@pytest.mark.django_db
def test_generated_password_is_printed_once(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    first = capsys.readouterr().out
    password = first.split("shown only now): ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    call_command("seed_demo")
    assert password not in capsys.readouterr().out


@pytest.mark.django_db
def test_refuses_without_debug_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=False"):
        call_command("seed_demo", "--password", "pw-demo-1234")
    assert not get_user_model().objects.exists()
    call_command("seed_demo", "--password", "pw-demo-1234", "--force")
    assert get_user_model().objects.count() == 4
