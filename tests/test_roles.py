import pytest
from django.contrib.auth.models import Group

from console.roles import ROLE_PERMISSIONS
from tests.factories import UserFactory


@pytest.mark.django_db
def test_groups_hold_exactly_the_declared_permissions():
    for role, expected in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        actual = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert actual == expected, role


@pytest.mark.django_db
def test_declared_permissions_all_exist():
    # A typo in ROLE_PERMISSIONS would silently grant nothing; the migration only assigns what exists.
    user = UserFactory(is_superuser=False)
    for role in ROLE_PERMISSIONS:
        user.groups.add(Group.objects.get(name=role))
    user = type(user).objects.get(pk=user.pk)
    assert set().union(*ROLE_PERMISSIONS.values()) <= user.get_all_permissions()


def test_customer_service_is_read_only():
    assert all(perm.split(".")[1].startswith("view_") for perm in ROLE_PERMISSIONS["customer_service"])
    assert ROLE_PERMISSIONS["support"] < ROLE_PERMISSIONS["admin"]
