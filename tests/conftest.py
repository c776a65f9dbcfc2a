import pytest

from console import roles
from integrations.inbound.views import shop_cache
from tests.factories import UserFactory


@pytest.fixture
def support_user(db):
    return UserFactory(username="sam-support", role=roles.SUPPORT)


@pytest.fixture
def service_user(db):
    return UserFactory(username="casey-service", role=roles.CUSTOMER_SERVICE)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin", role=roles.ADMIN, is_staff=True)


@pytest.fixture
def approver_user(db):
    return UserFactory(username="abe-approver", role=roles.ADMIN, is_staff=True)


@pytest.fixture
def users_by_role(support_user, service_user, admin_user):
    return {roles.SUPPORT: support_user, roles.CUSTOMER_SERVICE: service_user, roles.ADMIN: admin_user}


@pytest.fixture
def client_as(client):
    """client_as(user) -> a test client logged in as that user."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture(autouse=True)
def _fresh_receiver_shop_cache():
    """Each test has its own shops; the receiver's few-second cache must not carry ids across."""
    shop_cache.clear()
    yield
    shop_cache.clear()
