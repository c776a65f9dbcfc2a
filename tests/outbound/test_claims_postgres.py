"""On PostgreSQL, senders racing for the same calls: each call is claimed by exactly one of them.
(An UPDATE filtered across the shop join once let both win: PostgreSQL does not re-check an
`id IN (subquery)` against a row another transaction has just changed.)"""

import threading
from collections import Counter

import pytest
from django.db import connection

from integrations.models import OutboundCall
from integrations.outbound import queue
from integrations.outbound.sender import Sender
from tests.factories import ShopFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("racing row locks need PostgreSQL (SQLite serialises every write)")


def test_two_senders_claiming_the_same_300_calls_never_both_win():
    shop = ShopFactory()
    calls = [
        queue.enqueue(shop, "order.add_tags", {"id": f"gid://shopify/Order/{n}", "tags": ["t"]}, origin="person")[0]
        for n in range(300)
    ]
    wins: Counter = Counter()
    start = threading.Barrier(2)

    def race(tag: str) -> None:
        from django.db import connection as thread_connection

        sender = Sender(tag=tag)
        start.wait()
        try:
            for call in calls:
                fresh = OutboundCall(pk=call.pk, status=OutboundCall.Status.QUEUED, shop_id=shop.pk)
                if sender._claim(fresh):
                    wins[call.pk] += 1
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=race, args=(f"racer{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(wins.values()) == 300 and set(wins.values()) == {1}, "a call was claimed by both senders"
    assert OutboundCall.objects.filter(status="running").count() == 300
