"""Jobs declare their replay decision as code; one field map per resource drives sync, scrubbing and
export; privacy proof is append-only; an old uninstall never undoes a reinstall."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from console.models import AuditEntry
from integrations.jobs import fields, registry
from integrations.models import (
    Delivery,
    Event,
    PlatformCustomer,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
    PrivacyProof,
    PrivacyRequest,
    Shop,
)
from integrations.processing.pump import process_event
from integrations.shops.services import mark_shop_reinstalled
from tests.factories import ShopFactory, UserFactory
from tests.webhooks import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return ShopFactory()


FULL_ORDER = {
    "id": 1001,
    "admin_graphql_api_id": "gid://shopify/Order/1001",
    "name": "#1001",
    "order_number": 1001,
    "email": "ana@example.com",
    "customer": {"id": 7001},
    "financial_status": "paid",
    "fulfillment_status": "fulfilled",
    "total_price": "40.00",
    "currency": "EUR",
    "tags": "vip",
    "line_items": [{"id": 1, "variant_id": 2, "sku": "MUG", "title": "Mug", "quantity": 2, "price": "20.00"}],
    "shipping_address": {"address1": "12 Pine St", "country_code": "US"},
    "updated_at": "2026-05-04T10:00:00Z",
}
FULL_CUSTOMER = {
    "id": 7001,
    "email": "ana@example.com",
    "first_name": "Ana",
    "last_name": "Lima",
    "phone": "+15550001",
    "tags": "newsletter",
    "updated_at": "2026-05-04T10:00:00Z",
}


def test_every_job_has_an_executable_replay_decision(shop):
    event = receive(shop, "orders/create", FULL_ORDER)
    assert registry.JOB_TYPES, "jobs are registered"
    for name, job_type in registry.JOB_TYPES.items():
        assert isinstance(job_type.decision, registry.ReplayDecision), name
        assert job_type.replay in registry.Replay and len(job_type.replay_reason) > 20, name
        decision = job_type.decision(event, None)
        assert isinstance(decision, registry.Decision) and isinstance(decision.run, bool) and decision.reason, name
    for names in registry.TOPIC_JOBS.values():
        assert set(names) <= set(registry.JOB_TYPES)


def test_a_job_cannot_be_registered_without_a_decision():
    with pytest.raises(TypeError, match="needs a replay decision"):
        registry.job("no_decision", decision="always")
    with pytest.raises(TypeError):
        registry.job("no_decision")  # the keyword is required
    assert "no_decision" not in registry.JOB_TYPES


def test_sync_writes_exactly_the_mapped_fields(shop):
    process_event(receive(shop, "orders/create", FULL_ORDER))
    process_event(receive(shop, "customers/create", FULL_CUSTOMER))
    product = {
        "id": 81,
        "title": "Mug",
        "handle": "mug",
        "status": "active",
        "vendor": "Camp",
        "tags": "kitchen",
        "updated_at": "2026-05-04T10:00:00Z",
        "variants": [{"id": 44, "title": "Blue", "sku": "MUG-1", "price": "20.00", "inventory_item_id": 55}],
    }
    process_event(receive(shop, "products/update", product))
    for resource, model, payload, parent in [
        (fields.ORDER, PlatformOrder, FULL_ORDER, None),
        (fields.CUSTOMER, PlatformCustomer, FULL_CUSTOMER, None),
        (fields.PRODUCT, PlatformProduct, product, None),
        (fields.VARIANT, PlatformVariant, product["variants"][0], product),
    ]:
        stored = model.objects.values(*(f.platform for f in resource.fields)).get()
        assert stored == resource.values(payload, parent), resource.name


def test_redaction_blanks_exactly_the_personal_fields_the_maps_declare(shop):
    process_event(receive(shop, "orders/create", FULL_ORDER))
    process_event(receive(shop, "customers/create", FULL_CUSTOMER))
    process_event(receive(shop, "customers/redact", {"customer": {"id": 7001}, "orders_to_redact": [1001]}))
    for resource, model in [(fields.ORDER, PlatformOrder), (fields.CUSTOMER, PlatformCustomer)]:
        row = model.objects.values(*(f.platform for f in resource.fields)).get()
        for field in resource.fields:
            if field.personal:
                assert row[field.platform] == field.blank, (resource.name, field.platform)
            else:
                assert row[field.platform] not in ("", None), (resource.name, field.platform)
    stored = bytes(Delivery.objects.filter(topic="orders/create").get().body)
    assert b"ana@example.com" not in stored and b"12 Pine St" not in stored


def test_a_data_request_exports_the_fields_the_maps_declare(shop):
    process_event(receive(shop, "orders/create", FULL_ORDER))
    process_event(receive(shop, "customers/create", FULL_CUSTOMER))
    process_event(receive(shop, "customers/data_request", {"customer": {"id": 7001}, "orders_requested": [1001]}))
    export = PrivacyRequest.objects.get().export
    assert set(export["customer"][0]) == set(fields.CUSTOMER.export_fields())
    assert set(export["orders"][0]) == set(fields.ORDER.export_fields())
    assert export["customer"][0]["email"] == "ana@example.com" and export["orders"][0]["name"] == "#1001"


def test_privacy_proof_is_appended_per_run_and_never_rewritten(shop):
    process_event(receive(shop, "customers/create", FULL_CUSTOMER))
    event = receive(shop, "customers/data_request", {"customer": {"id": 7001}})
    process_event(event)
    first = PrivacyRequest.objects.get().proofs.get()
    completed_at = PrivacyRequest.objects.get().completed_at
    process_event(event, replay=True)
    request = PrivacyRequest.objects.get()
    assert list(request.proofs.values_list("pk", flat=True)) == [first.pk, first.pk + 1]
    assert request.completed_at == completed_at  # the first completion time stands
    with pytest.raises(PermissionDenied):
        PrivacyProof.objects.filter(pk=first.pk).update(counts={})
    with pytest.raises(PermissionDenied):
        PrivacyProof.objects.all().delete()
    first.counts = {"forged": 1}
    with pytest.raises(PermissionDenied):
        first.save()
    assert PrivacyProof.objects.get(pk=first.pk).counts == {"customer_records": 1, "orders": 0}


def test_sync_customer_is_not_replayable_once_the_customer_was_redacted(shop):
    update = receive(shop, "customers/update", FULL_CUSTOMER)
    process_event(update)
    decide = registry.JOB_TYPES["sync_customer"].decision
    assert decide(Event.objects.get(pk=update.pk), None).run is True
    process_event(receive(shop, "customers/redact", {"customer": {"id": 7001}}))
    decision = decide(Event.objects.get(pk=update.pk), None)
    assert decision.run is False and "redacted" in decision.reason
    process_event(update, replay=True)
    assert PlatformCustomer.objects.get().email == ""


def test_an_uninstall_is_not_replayable_after_a_reinstall_and_never_undoes_one(shop):
    admin = UserFactory(role="admin")
    uninstall = receive(
        shop, "app/uninstalled", {"id": 600, "myshopify_domain": shop.domain}, triggered_at=timezone.now()
    )
    assert process_event(uninstall) == Event.Status.PROCESSED
    assert Shop.objects.get(pk=shop.pk).state == Shop.State.UNINSTALLED
    decide = registry.JOB_TYPES["mark_uninstalled"].decision
    assert decide(uninstall, None).run is True

    with pytest.raises(ValueError, match="Say why"):
        mark_shop_reinstalled(shop=shop, by=admin, reason=" ")
    assert mark_shop_reinstalled(shop=shop, by=admin, reason="merchant reinstalled the app") is True
    decision = decide(uninstall, None)
    assert decision.run is False and "reinstalled" in decision.reason

    # Replayed anyway (or delivered late): the shop stays installed.
    process_event(uninstall, replay=True)
    assert Shop.objects.get(pk=shop.pk).state == Shop.State.INSTALLED
    verbs = list(AuditEntry.objects.for_object(shop).order_by("id").values_list("verb", flat=True))
    assert verbs == ["shop.uninstalled", "shop.reinstalled"]

    # An uninstall Shopify triggered after the reinstall does uninstall again.
    later = receive(
        shop,
        "app/uninstalled",
        {"id": 600, "myshopify_domain": shop.domain},
        triggered_at=timezone.now() + timedelta(seconds=1),
    )
    process_event(later)
    assert Shop.objects.get(pk=shop.pk).state == Shop.State.UNINSTALLED


def test_personal_payload_keys_come_from_the_maps():
    keys = fields.personal_payload_keys()
    declared = {f.payload for r in fields.RESOURCES.values() for f in r.personal_fields if isinstance(f.payload, str)}
    assert declared - fields.PERSONAL_PAYLOAD_BLOCKS <= keys
    assert {"email", "first_name", "phone"} <= keys and "title" not in keys
