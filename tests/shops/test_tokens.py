"""Expiring offline tokens against the simulator over real HTTP: refreshed before they expire (on
the worker's schedule), refreshed once on a 401 with the call sent again at once, and a refresh
token that no longer works stops the shop's calls with the reason, once, without any retry loop.
Tokens are never stored in the audit trail in full."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from console.models import AuditEntry
from integrations import tasks
from integrations.models import HealthCheck, OutboundCall, OutboundHold
from integrations.outbound import queue
from integrations.outbound.classify import TOKEN_HELD_NEXT_STEP
from integrations.outbound.client import AdminClient
from integrations.outbound.sender import Sender
from integrations.shops.tokens import hold_token, refresh_expiring_tokens, refresh_token, token_state
from tests.outbound import conftest as outbound

# The simulator fixtures of the outbound tests (a console Shop pointed at a running simulator).
simulator, store_factory, store = outbound.simulator, outbound.store_factory, outbound.store
Status = OutboundCall.Status
CLIENT_ID = "console-test-client"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.OUTBOUND_BACKOFF_BASE = 0.02
    settings.OUTBOUND_BACKOFF_CAP = 0.1


@pytest.fixture
def counted(monkeypatch):
    """Counts of the requests the console makes: {"graphql": n, "exchange_token": n}."""
    counts = {"graphql": 0, "exchange_token": 0}
    for name in counts:
        original = getattr(AdminClient, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(AdminClient, name, wrapper)
    return counts


@pytest.fixture
def expiring(store_factory):
    """expiring(expires_in) -> (shop, store, issued): a shop whose console record holds an expiring
    token and its refresh token, issued by the simulator's control API."""

    def make(expires_in: int = 300):
        shop, sim = store_factory(client_id=CLIENT_ID)
        issued = sim.control("POST", "/tokens", json={"expires_in": expires_in})
        now = timezone.now()
        shop.client_id = CLIENT_ID
        shop.access_token = issued["access_token"]
        shop.refresh_token = issued["refresh_token"]
        shop.access_token_expires_at = now + timedelta(seconds=issued["expires_in"])
        shop.refresh_token_expires_at = now + timedelta(seconds=issued["refresh_token_expires_in"])
        shop.save()
        return shop, sim, issued

    return make


def tag_orders(shop, sim, count: int) -> list[OutboundCall]:
    calls = []
    for order in sim.records("orders")[:count]:
        call, _ = queue.enqueue(
            shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["vip"]}, origin="person"
        )
        calls.append(call)
    return calls


def retitle_product(shop, sim) -> OutboundCall:
    product = sim.records("products")[0]
    call, _ = queue.enqueue(
        shop, "product.update", {"product": {"id": product["admin_graphql_api_id"], "title": "New"}}, origin="person"
    )
    return call


def drain() -> int:
    return Sender(tag="test").drain(timeout=10)


def audits(shop, verb: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(verb=verb, target_id=str(shop.pk)).order_by("id"))


def assert_no_full_secret(entry: AuditEntry, *secrets: str) -> None:
    written = f"{entry.before} {entry.after} {entry.reason}"
    for secret in secrets:
        assert secret not in written, "a token was written to the audit trail in full"


def test_a_token_about_to_expire_is_refreshed_before_it_does(expiring, store_factory, counted):
    shop, sim, issued = expiring(expires_in=300)  # expires in 5 minutes
    later, _ = store_factory()  # a non-expiring token: nothing to refresh
    assert token_state(shop)["valid"] is True

    results = refresh_expiring_tokens(within=timedelta(minutes=10))

    assert results == [{"shop": shop.domain, "ok": True, "message": results[0]["message"]}]
    assert "token refreshed" in results[0]["message"]
    assert counted["exchange_token"] == 1
    shop.refresh_from_db()
    assert shop.access_token != issued["access_token"] and shop.refresh_token != issued["refresh_token"]
    assert shop.access_token_expires_at > timezone.now() + timedelta(minutes=55), "Shopify's expires_in is 3600"
    assert shop.token_refreshed_at is not None and shop.token_problem == ""
    state = token_state(shop)
    assert state["valid"] is True and state["expires_at"] == shop.access_token_expires_at
    assert state["refreshed_at"] == shop.token_refreshed_at and state["problem"] == ""
    assert shop.access_token not in str(state), "token_state never carries the token itself"
    [entry] = audits(shop, "shop.token_refreshed")
    assert entry.actor is None and "scheduled" in entry.reason
    assert entry.after["access_token"] == "••••" + shop.access_token[-4:]
    assert_no_full_secret(entry, issued["access_token"], issued["refresh_token"], shop.access_token, shop.refresh_token)
    # The new token works, and nothing is due for refresh now.
    [call] = tag_orders(shop, sim, 1)
    drain()
    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED and call.attempts.count() == 1
    assert refresh_expiring_tokens(within=timedelta(minutes=10)) == []
    assert counted["exchange_token"] == 1
    later.refresh_from_db()
    assert later.token_refreshed_at is None


def test_the_schedule_refreshes_expiring_tokens_and_checks_every_shop(expiring):
    shop, _, issued = expiring(expires_in=120)
    summary = tasks.check_shops_health()
    assert {key: summary[key] for key in ("refreshed", "refresh_failed", "checked", "errors")} == {
        "refreshed": 1,
        "refresh_failed": 0,
        "checked": 1,
        "errors": 0,
    }
    shop.refresh_from_db()
    assert shop.access_token != issued["access_token"]
    assert set(HealthCheck.objects.filter(shop=shop).values_list("kind", flat=True)) == {
        "scopes",
        "version",
        "subscriptions",
    }
    assert shop.answered_api_version == shop.api_version, "the scope check recorded the answering version"


def test_a_401_refreshes_once_and_the_call_goes_through_in_the_same_send(expiring, counted):
    shop, sim, issued = expiring(expires_in=300)
    # Shopify expired it early (the console still thinks it has minutes left).
    sim.control("POST", "/expire-token", json={"token": issued["access_token"]})
    [call] = tag_orders(shop, sim, 1)

    assert drain() == 1
    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED, call.reason
    first, second = call.attempts.order_by("number")
    assert first.http_status == 401 and first.outcome == "retry" and "token was refreshed" in first.message
    assert second.http_status == 200 and second.outcome == "succeeded"
    assert call.attempt_count == 2
    assert counted == {"graphql": 2, "exchange_token": 1}
    shop.refresh_from_db()
    assert shop.access_token != issued["access_token"] and token_state(shop)["valid"]
    [entry] = audits(shop, "shop.token_refreshed")
    assert f"outbound call {call.pk}" in entry.reason
    assert not OutboundHold.objects.filter(shop=shop).exists()


def test_a_refresh_token_that_was_replaced_stops_calls_with_the_reason_and_nothing_loops(expiring, counted, simulator):
    shop, sim, issued = expiring(expires_in=300)
    # Someone else refreshed twice with the same credentials: the refresh token the console holds
    # was replaced, and the one that replaced it was used, so Shopify no longer accepts it.
    endpoint = f"{simulator.url}/{shop.domain}/admin/oauth/access_token"
    grant = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": shop.webhook_secret}
    second = requests.post(endpoint, json={**grant, "refresh_token": issued["refresh_token"]}, timeout=5).json()
    requests.post(endpoint, json={**grant, "refresh_token": second["refresh_token"]}, timeout=5).raise_for_status()
    sim.control("POST", "/revoke-token", json={"token": issued["access_token"]})
    first, other = tag_orders(shop, sim, 2)
    product_call = retitle_product(shop, sim)

    assert drain() == 1, "one call is sent; the token hold keeps the others back"
    first, other, product_call = [OutboundCall.objects.get(pk=call.pk) for call in (first, other, product_call)]
    assert first.status == Status.FAILED and first.classification == "non_retryable"
    assert first.failure_kind == "unauthorized" and first.attempts.count() == 1
    assert "invalid_grant" in first.reason and "revoked or expired" in first.reason
    assert first.next_step == TOKEN_HELD_NEXT_STEP
    for held in (other, product_call):
        assert held.status == Status.QUEUED and held.attempts.count() == 0
    assert counted == {"graphql": 1, "exchange_token": 1}
    shop.refresh_from_db()
    assert "invalid_grant" in shop.token_problem
    hold = OutboundHold.objects.get(shop=shop, kind="token", cleared_at__isnull=True)
    assert "cannot be refreshed" in hold.reason
    state = token_state(shop)
    assert state["valid"] is False and "invalid_grant" in state["problem"] and state["held"] is True
    [entry] = audits(shop, "shop.token_refresh_failed")
    assert "invalid_grant" in entry.after["problem"]
    assert_no_full_secret(entry, issued["access_token"], issued["refresh_token"])

    # No loop: more sender passes and the schedule leave it alone until a person acts.
    assert drain() == 0
    assert refresh_expiring_tokens(within=timedelta(days=1)) == []
    assert counted == {"graphql": 1, "exchange_token": 1}
    assert len(audits(shop, "shop.token_refresh_failed")) == 1

    # A person gives the shop a working token: the held calls run.
    fresh = sim.control("POST", "/tokens", json={"expires_in": 3600})
    shop.refresh_token = fresh["refresh_token"]
    shop.save(update_fields=["refresh_token"])
    ok, message = refresh_token(shop, reason="support set a new refresh token")
    assert ok, message
    hold.refresh_from_db()
    assert hold.cleared_at is not None and hold.cleared_reason == "the token was refreshed"
    assert drain() == 2
    assert {OutboundCall.objects.get(pk=call.pk).status for call in (other, product_call)} == {Status.SUCCEEDED}


def test_a_refusal_of_the_client_credentials_is_a_token_problem_too(expiring):
    shop, _, _ = expiring(expires_in=300)
    shop.client_id = "not-the-apps-client-id"
    shop.save(update_fields=["client_id"])
    ok, message = refresh_token(shop, reason="test")
    assert not ok and "invalid_client" in message
    shop.refresh_from_db()
    assert "invalid_client" in shop.token_problem and token_state(shop)["valid"] is False


def test_a_shop_without_a_refresh_token_keeps_the_one_try_401(store):
    shop, sim = store
    sim.control("POST", "/revoke-token", json={})
    [call] = tag_orders(shop, sim, 1)
    drain()
    call.refresh_from_db()
    assert call.status == Status.FAILED and call.failure_kind == "unauthorized" and call.attempts.count() == 1
    assert not OutboundHold.objects.filter(shop=shop).exists(), "no refresh attempted, no hold"
    ok, message = refresh_token(shop, reason="test")
    assert not ok and "no refresh token" in message


def claimed(call: OutboundCall, sender: Sender) -> OutboundCall:
    """The call as a sender holds it: loaded (with its shop) before anything below changed."""
    [due] = [due for due in queue.due_calls() if due.pk == call.pk]
    assert sender._claim(due)
    return due


def test_a_401_after_another_sender_refreshed_uses_the_new_token_without_refreshing_again(expiring, counted):
    shop, sim, issued = expiring(expires_in=300)
    [call] = tag_orders(shop, sim, 1)
    sender = Sender(tag="test")
    due = claimed(call, sender)  # holds the old token
    assert refresh_token(shop, reason="another sender")[0]
    sim.control("POST", "/revoke-token", json={"token": issued["access_token"]})

    sender.send(due)

    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED and call.attempts.count() == 2
    assert "another sender refreshed it meanwhile" in call.attempts.get(number=1).message
    assert counted["exchange_token"] == 1, "the token another sender refreshed is used, not refreshed again"


def test_a_401_while_the_token_is_held_waits_with_the_other_calls(expiring, counted):
    shop, sim, issued = expiring(expires_in=300)
    [call] = tag_orders(shop, sim, 1)
    sender = Sender(tag="test")
    due = claimed(call, sender)
    hold_token(shop, reason="the access token cannot be refreshed (test)")
    sim.control("POST", "/revoke-token", json={"token": issued["access_token"]})

    sender.send(due)

    call.refresh_from_db()
    assert call.status == Status.WAITING and call.attempts.count() == 1 and call.next_step == TOKEN_HELD_NEXT_STEP
    assert counted["exchange_token"] == 0
    assert [due.pk for due in queue.due_calls(now=timezone.now() + timedelta(hours=1))] == [], "held"
