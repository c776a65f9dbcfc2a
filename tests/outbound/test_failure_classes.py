"""Each way Shopify can refuse a call, through the simulator over real HTTP: classified right,
retried only when retrying can help, and the call says what a person should do next."""

import html

import pytest
from django.urls import reverse

from integrations.models import OutboundCall
from integrations.outbound import queue
from integrations.outbound.sender import Sender

Status = OutboundCall.Status


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.OUTBOUND_BACKOFF_BASE = 0.02
    settings.OUTBOUND_BACKOFF_CAP = 0.1
    settings.OUTBOUND_READ_TIMEOUT = 0.4
    settings.OUTBOUND_CONNECT_TIMEOUT = 0.5


def tag_order(shop, sim, tags=("vip",)) -> OutboundCall:
    order = sim.records("orders")[0]
    call, _ = queue.enqueue(
        shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": list(tags)}, origin="person"
    )
    return call


def set_stock(shop, sim, *, quantity=7, compare_to=None) -> tuple[OutboundCall, dict]:
    level = sim.records("inventory_levels")[0]
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
                    "locationId": f"gid://shopify/Location/{level['location_id']}",
                    "quantity": quantity,
                    "changeFromQuantity": level["available"] if compare_to is None else compare_to,
                }
            ],
        }
    }
    call, _ = queue.enqueue(shop, "inventory.set", variables, origin="person")
    return call, level


def run(call: OutboundCall, timeout: float = 15.0) -> OutboundCall:
    Sender(tag="test").drain(timeout=timeout)
    call.refresh_from_db()
    return call


def attempts(call: OutboundCall) -> list:
    return list(call.attempts.order_by("number"))


# --- retryable: sent again, and it goes through once the cause clears -------------------------


def test_http_429_is_retried_after_retry_after_then_applies(store):
    shop, sim = store
    sim.fault("api_5xx_rate", count=1, params={"statuses": [429], "retry_after": 0.5})
    call = run(tag_order(shop, sim))
    first, second = attempts(call)
    assert (first.http_status, first.throttled, first.classification, first.outcome) == (
        429,
        True,
        "retryable",
        "retry",
    )
    assert first.retry_after == 0.5
    assert (second.started_at - first.started_at).total_seconds() >= 0.5, "Retry-After was not honoured"
    assert call.status == Status.SUCCEEDED and call.attempt_count == 2


def test_graphql_throttled_is_retried_when_the_bucket_has_room(store):
    shop, sim = store
    sim.fault("throttle_storm", count=1)
    call = run(tag_order(shop, sim))
    first, second = attempts(call)
    assert first.error_codes == ["THROTTLED"] and first.throttled and first.http_status == 200
    assert first.bucket_available is not None and first.bucket_available < 10
    assert second.outcome == "succeeded" and call.status == Status.SUCCEEDED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(store, status):
    shop, sim = store
    sim.fault("api_5xx_rate", count=2, params={"statuses": [status]})
    call = run(tag_order(shop, sim))
    tries = attempts(call)
    assert [t.http_status for t in tries] == [status, status, 200]
    assert [t.classification for t in tries[:2]] == ["retryable", "retryable"]
    assert all(t.failure_kind == "server_error" for t in tries[:2])
    assert call.status == Status.SUCCEEDED


def test_a_timeout_is_retried(store):
    shop, sim = store
    sim.fault("slow_responses", count=1, params={"seconds": 1.0})
    call = run(tag_order(shop, sim))
    first = attempts(call)[0]
    assert first.http_status is None and first.failure_kind == "timeout" and first.classification == "retryable"
    assert call.status == Status.SUCCEEDED and call.attempt_count >= 2
    # (tagsAdd is idempotent by nature: the timed-out first try may also have applied, harmlessly.)
    assert "vip" in sim.record("orders", call.target_gid.rsplit("/", 1)[-1])["tags"]


def test_a_refused_connection_is_retried_then_parked_after_the_budget(store, settings):
    shop, _ = store
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    shop.api_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    shop.save(update_fields=["api_url"])
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["x"]}, origin="person")
    call = run(call)
    tries = attempts(call)
    assert [t.failure_kind for t in tries] == ["connection"] * 3
    assert call.status == Status.FAILED and call.classification == "retryable"
    assert call.failure_kind == "connection" and "gave up after 3 tries" in call.reason
    assert "send again" in call.next_step.lower()


def test_slow_inventory_set_retried_while_the_first_try_still_runs_applies_once(store):
    """The first try reaches Shopify and times out on our side; the retry carries the same
    idempotency key, so Shopify answers it with the first try's result instead of applying it
    again (which the compare guard would have refused as stale)."""
    shop, sim = store
    sim.fault("slow_responses", count=1, params={"seconds": 1.0})
    level_quantity = 17
    call, level = set_stock(shop, sim, quantity=level_quantity)
    call = run(call)
    tries = attempts(call)
    assert tries[0].failure_kind == "timeout"
    # Only a retry carrying the first try's key can find it still running in Shopify.
    assert any(t.failure_kind == "concurrent" for t in tries), [t.message for t in tries]
    assert call.status == Status.SUCCEEDED, call.reason
    assert all(t.failure_kind != "stale" for t in tries)
    assert "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" not in str([t.user_errors for t in tries])
    current = sim.record("inventory_levels", f"{level['inventory_item_id']}:{level['location_id']}")
    assert current["available"] == level_quantity
    change = call.result["changes"][0]
    assert change["delta"] == level_quantity - level["available"], "the change was applied more than once"


# --- not retryable: one try, a clear next step -----------------------------------------------


@pytest.fixture
def page(client, support_user):
    """page(call) -> the call's page as support reads it."""
    client.force_login(support_user)

    def read(call: OutboundCall) -> str:
        response = client.get(reverse("outbound:detail", args=[call.pk]))
        assert response.status_code == 200
        return html.unescape(response.content.decode())

    return read


def assert_parked(call: OutboundCall, kind: str, *, words: str, page=None) -> None:
    assert call.status == Status.FAILED, call.reason
    assert call.classification == "non_retryable"
    assert call.failure_kind == kind
    assert call.attempt_count == 1 and call.attempts.count() == 1, "a non-retryable call was retried"
    assert words.lower() in call.next_step.lower(), call.next_step
    if page is not None:
        shown = page(call)
        assert call.next_step in shown, "the next step is not on the call's page"
        assert "Not retryable" in shown


def test_401_means_check_the_installation_and_token(store, page):
    shop, sim = store
    sim.control("POST", "/revoke-token", json={})
    call = run(tag_order(shop, sim))
    assert attempts(call)[0].http_status == 401
    assert_parked(call, "unauthorized", words="access token", page=page)


def test_402_means_the_store_is_frozen(store, page):
    shop, sim = store
    sim.control("POST", "/freeze", json={})
    call = run(tag_order(shop, sim))
    assert attempts(call)[0].http_status == 402
    assert_parked(call, "frozen", words="frozen", page=page)


def test_423_means_the_store_is_locked(store, page):
    shop, sim = store
    sim.control("POST", "/lock", json={})
    call = run(tag_order(shop, sim))
    assert attempts(call)[0].http_status == 423
    assert_parked(call, "locked", words="locked", page=page)


def test_access_denied_means_a_missing_scope(store, page):
    shop, sim = store
    sim.control("PUT", "/scopes", json={"scopes": ["read_orders", "write_products"]})
    call = run(tag_order(shop, sim))
    first = attempts(call)[0]
    assert "ACCESS_DENIED" in first.error_codes
    assert_parked(call, "missing_scope", words="scope", page=page)


def test_404_means_the_record_or_shop_is_gone(store, simulator):
    shop, _ = store
    shop.api_url = f"{simulator.url}/not-in-the-simulator.myshopify.com"
    shop.save(update_fields=["api_url"])
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["x"]}, origin="person")
    call = run(call)
    assert attempts(call)[0].http_status == 404
    assert_parked(call, "not_found", words="gone")


def test_a_record_shopify_does_not_have_is_not_found(store):
    shop, _ = store
    call, _ = queue.enqueue(
        shop, "order.add_tags", {"id": "gid://shopify/Order/999999999", "tags": ["x"]}, origin="person"
    )
    call = run(call)
    assert attempts(call)[0].user_errors
    assert_parked(call, "not_found", words="gone")


def test_user_errors_mean_the_payload_with_its_field_errors(store, page):
    shop, sim = store
    product = sim.records("products")[0]
    call, _ = queue.enqueue(
        shop, "product.update", {"product": {"id": product["admin_graphql_api_id"], "title": ""}}, origin="person"
    )
    call = run(call)
    first = attempts(call)[0]
    assert first.user_errors == [{"field": ["product", "title"], "message": "Title can't be blank"}]
    assert "product.title: Title can't be blank" in call.reason
    assert_parked(call, "invalid", words="fields", page=page)


def test_a_stale_compare_guard_is_a_conflict_to_reconcile_never_overwritten(store, page):
    shop, sim = store
    call, level = set_stock(shop, sim, quantity=50, compare_to=12345)
    call = run(call)
    first = attempts(call)[0]
    assert first.user_errors[0]["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert_parked(call, "stale", words="reconcile", page=page)
    current = sim.record("inventory_levels", f"{level['inventory_item_id']}:{level['location_id']}")
    assert current["available"] == level["available"], "a stale write overwrote Shopify's value"


@pytest.mark.parametrize(("status", "kind", "words"), [(403, "missing_scope", "scope"), (422, "invalid", "fields")])
def test_http_403_and_422_are_not_retried(store, page, status, kind, words):
    shop, sim = store
    sim.fault("api_5xx_rate", count=1, params={"statuses": [status]})
    call = run(tag_order(shop, sim))
    assert attempts(call)[0].http_status == status
    assert_parked(call, kind, words=words, page=page)


def test_retryable_tries_show_on_the_page_with_the_answer_each_time(store, page):
    shop, sim = store
    sim.fault("api_5xx_rate", count=2, params={"statuses": [503]})
    call = run(tag_order(shop, sim))
    shown = page(call)
    assert shown.count("503") >= 2 and "Succeeded" in shown


def test_a_redirect_is_never_followed_with_the_token(store, simulator):
    """The API URL answers 307 to another host: the token must not travel there."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers.get("X-Shopify-Access-Token"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{elsewhere.server_address[1]}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (elsewhere, redirect):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shop, _ = store
        shop.api_url = f"http://127.0.0.1:{redirect.server_address[1]}"
        shop.save(update_fields=["api_url"])
        call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["x"]}, origin="person")
        call = run(call)
    finally:
        for server in (elsewhere, redirect):
            server.shutdown()
    assert seen == [], "the access token was sent to the redirect's host"
    assert attempts(call)[0].http_status == 307
    assert_parked(call, "redirect", words="API URL")


def test_a_malformed_api_url_is_not_retried(store):
    shop, _ = store
    Shop = type(shop)
    Shop.objects.filter(pk=shop.pk).update(api_url="http://exa mple.com:notaport")
    shop.refresh_from_db()
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["x"]}, origin="person")
    call = run(call)
    assert_parked(call, "bad_url", words="malformed")


def test_retry_after_as_an_http_date_is_understood():
    from email.utils import format_datetime

    from django.utils import timezone

    from integrations.outbound.client import _retry_after

    assert _retry_after("2.5") == 2.5
    in_a_minute = format_datetime(timezone.now() + timezone.timedelta(seconds=60), usegmt=True)
    assert 55 < _retry_after(in_a_minute) <= 60
    assert _retry_after("soon") is None
