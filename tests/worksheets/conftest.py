"""Worksheet tests run against a real simulator over HTTP (the outbound tests' store), with the
platform's copy built from the simulator's own records, then made to diverge on purpose."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.jobs.fields import RESOURCES
from integrations.outbound.sender import Sender
from tests.outbound.conftest import simulator, store, store_factory  # noqa: F401

REST_KINDS = {"products": "product", "variants": "variant", "customers": "customer", "orders": "order",
              "inventory_levels": "inventory_level"}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_minimum_age(settings):
    # The simulator's records were all just created: at the default minimum age every one would be
    # "in flight". Tests of the minimum age set it themselves.
    settings.WORKSHEET_MIN_AGE_SECONDS = 0
    settings.WORKSHEET_RULES = {}


def copy_to_platform(shop, sim, kind: str, *, synced_ago=timedelta(hours=1)):
    """The platform's copy of every simulator record of `kind`, as a sync would have stored it."""
    resource = RESOURCES[REST_KINDS[kind]]
    made = []
    for record in sim.records(kind):
        values = resource.values(record, None)
        key = resource.key_of(record)
        updated = parse_datetime(record.get("updated_at") or "") or timezone.now()
        made.append(resource.model.objects.create(shop=shop, shopify_updated_at=updated, **key, **values))
    resource.model.objects.filter(shop=shop).update(synced_at=timezone.now() - synced_ago)
    return made


def send_outbound(timeout: float = 10) -> None:
    Sender(tag="worksheet-test").drain(timeout=timeout)
