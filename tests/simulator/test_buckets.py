"""The rate limiters hold Shopify's documented numbers (facts file, section 3)."""

import pytest

from integrations.simulator.buckets import (
    GRAPHQL_MAXIMUM_AVAILABLE,
    GRAPHQL_RESTORE_RATE,
    REST_BUCKET_SIZE,
    REST_LEAK_RATE,
    CostBucket,
    LeakyBucket,
)


def test_standard_plan_defaults_are_shopifys():
    assert (REST_BUCKET_SIZE, REST_LEAK_RATE) == (40, 2.0)
    assert (GRAPHQL_MAXIMUM_AVAILABLE, GRAPHQL_RESTORE_RATE) == (2000.0, 100.0)


def test_rest_bucket_holds_40_and_refuses_the_41st_with_time_to_wait(clock):
    bucket = LeakyBucket(40, 2.0, clock)
    decisions = [bucket.acquire() for _ in range(40)]
    assert all(d.allowed for d in decisions)
    assert decisions[0].call_limit_header == "1/40"
    assert decisions[-1].call_limit_header == "40/40"
    refused = bucket.acquire()
    assert not refused.allowed
    assert refused.call_limit_header == "40/40"
    assert refused.retry_after == pytest.approx(0.5)  # one slot leaks out in 1/2 s


def test_rest_bucket_leaks_two_per_second(clock):
    bucket = LeakyBucket(40, 2.0, clock)
    for _ in range(39):
        bucket.acquire()
    assert bucket.level == pytest.approx(39)
    clock.advance(10)  # Shopify's own example: 39/40 becomes 19/40 ten seconds later
    assert bucket.level == pytest.approx(19)
    clock.advance(100)
    assert bucket.level == 0


def test_plus_rest_bucket(clock):
    bucket = LeakyBucket(400, 20.0, clock)
    assert all(bucket.acquire().allowed for _ in range(400))
    assert bucket.acquire().retry_after == pytest.approx(0.05)
    clock.advance(1)
    assert bucket.level == pytest.approx(380)


def test_cost_bucket_restores_100_points_per_second_up_to_2000(clock):
    bucket = CostBucket(2000, 100, clock)
    assert bucket.consume(1500)
    assert bucket.available == pytest.approx(500)
    clock.advance(1)
    assert bucket.available == pytest.approx(600)
    assert not bucket.consume(601)  # throttled: nothing is taken
    assert bucket.available == pytest.approx(600)
    clock.advance(60)
    assert bucket.available == 2000
    assert bucket.status() == {"maximumAvailable": 2000.0, "currentlyAvailable": 2000, "restoreRate": 100.0}


def test_cost_bucket_refunds_unused_points_but_never_above_maximum(clock):
    bucket = CostBucket(2000, 100, clock)
    bucket.consume(102)  # requested cost up front
    bucket.refund(102 - 12)  # actual cost was 12
    assert bucket.available == pytest.approx(1988)
    bucket.refund(500)
    assert bucket.available == 2000
