"""The per-shop throttle every sender shares: a model of the shop's GraphQL cost bucket.

The model starts from what Shopify last reported (`throttleStatus`: currently available, maximum,
restore rate), restores at the restore rate, and has the expected cost of every call taken out
before it is sent, so a sender waits for room instead of sending and being throttled. Bulk lanes
(replay, reconcile) may not take the bucket below OUTBOUND_LIVE_RESERVE of its maximum: that part
is kept for live calls. A Retry-After or a throttled answer blocks the whole shop until it
passes. The state lives in the database (ShopThrottle, one conditional UPDATE per reservation),
or in Redis when OUTBOUND_THROTTLE_BACKEND is "redis" (one Lua script per reservation); never in
a process's memory, so any number of workers on any number of machines share one bucket.

Shopify's report cannot count calls still in flight, so when one arrives the model sets the
level to the reported one minus the expected cost of the shop's other running calls: never
above what Shopify could give, so a report can only make the console send more slowly.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F, FloatField, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from console import metrics
from integrations.models import OutboundCall, ShopThrottle
from integrations.outbound.client import Reply


@dataclass
class Bucket:
    maximum: float
    restore_rate: float
    available: float  # restored to `now`
    blocked_for: float  # seconds until a block (Retry-After) ends

    def wait_for(self, cost: float, *, bulk: bool) -> float:
        """Seconds until `cost` points may be taken (0 when now)."""
        floor = self.maximum * settings.OUTBOUND_LIVE_RESERVE if bulk else 0.0
        short = cost + floor - self.available
        restore = short / self.restore_rate if short > 0 and self.restore_rate > 0 else 0.0
        wait = max(self.blocked_for, restore, 0.0)
        metrics.throttle_waited(wait, bulk=bulk)
        return wait


def _defaults() -> dict:
    return {
        "maximum": float(settings.OUTBOUND_BUCKET_MAXIMUM),
        "restore_rate": float(settings.OUTBOUND_BUCKET_RESTORE_RATE),
        "available": float(settings.OUTBOUND_BUCKET_MAXIMUM),
        "as_of": time.time(),
    }


class DatabaseThrottle:
    def _restored(self, now: float):
        return Least(
            F("maximum"), F("available") + F("restore_rate") * (Value(now, output_field=FloatField()) - F("as_of"))
        )

    def reserve(self, shop_id: int, cost: float, *, bulk: bool) -> float:
        """Take `cost` points if they are there now; else take nothing and return the seconds to wait."""
        now = time.time()
        floor = F("maximum") * settings.OUTBOUND_LIVE_RESERVE if bulk else Value(0.0, output_field=FloatField())
        taken = (
            ShopThrottle.objects.filter(pk=shop_id, blocked_until__lte=now)
            .alias(restored=self._restored(now), floor=floor)
            .filter(restored__gte=F("floor") + cost)
            .update(available=self._restored(now) - cost, as_of=now)
        )
        if taken:
            return 0.0
        bucket = self.bucket(shop_id)
        return max(bucket.wait_for(cost, bulk=bulk), 0.01)

    def bucket(self, shop_id: int) -> Bucket:
        row, _ = ShopThrottle.objects.get_or_create(pk=shop_id, defaults=_defaults())
        now = time.time()
        available = min(row.maximum, row.available + row.restore_rate * max(0.0, now - row.as_of))
        return Bucket(row.maximum, row.restore_rate, available, max(0.0, row.blocked_until - now))

    def refund(self, shop_id: int, cost: float) -> None:
        now = time.time()
        ShopThrottle.objects.filter(pk=shop_id).update(
            available=Least(F("maximum"), self._restored(now) + cost), as_of=now
        )

    def report(self, shop_id: int, reply: Reply, *, call_id: int, started: float) -> None:
        """Take the level Shopify reported (minus the shop's other calls in flight) if the request
        behind it started after the one behind the last report taken; an older request's report
        (it was slow to come back) can only lower the level."""
        if reply.bucket_available is None:
            return
        now = time.time()
        level = max(0.0, reply.bucket_available - _points_in_flight(shop_id, call_id))
        changes = {"as_of": now, "reported_at": timezone.now()}
        if reply.bucket_maximum:
            changes["maximum"] = reply.bucket_maximum
        if reply.restore_rate:
            changes["restore_rate"] = reply.restore_rate
        taken = ShopThrottle.objects.filter(pk=shop_id, reported_request_at__lte=started).update(
            available=level, reported_request_at=started, **changes
        )
        if not taken:
            ShopThrottle.objects.filter(pk=shop_id).update(
                available=Least(self._restored(now), Value(level, output_field=FloatField())), as_of=now
            )

    def block(self, shop_id: int, seconds: float, *, throttled: bool) -> None:
        """Hold every call of the shop for `seconds` (never shortening a longer block)."""
        until = time.time() + seconds
        changes = {"blocked_until": Greatest(F("blocked_until"), Value(until, output_field=FloatField()))}
        if throttled:
            changes["throttled_total"] = F("throttled_total") + 1
        ShopThrottle.objects.filter(pk=shop_id).update(**changes)


def _points_in_flight(shop_id: int, call_id: int) -> int:
    """Expected cost of the shop's other calls being sent now: Shopify's report cannot count them."""
    return (
        OutboundCall.objects.filter(shop_id=shop_id, status=OutboundCall.Status.RUNNING)
        .exclude(pk=call_id)
        .aggregate(points=Coalesce(Sum("expected_cost"), 0))["points"]
    )


# KEYS[1]: the shop's hash. ARGV: now, cost, floor fraction, default maximum, default restore rate.
# Returns "0" when taken, else the seconds to wait, as a string.
_RESERVE_LUA = """
local maximum = tonumber(redis.call('HGET', KEYS[1], 'maximum') or ARGV[4])
local rate = tonumber(redis.call('HGET', KEYS[1], 'restore_rate') or ARGV[5])
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or maximum)
local as_of = tonumber(redis.call('HGET', KEYS[1], 'as_of') or ARGV[1])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0')
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local floor = maximum * tonumber(ARGV[3])
local restored = math.min(maximum, available + rate * math.max(0, now - as_of))
if now >= blocked and restored - floor >= cost then
  redis.call('HSET', KEYS[1], 'maximum', maximum, 'restore_rate', rate, 'available', restored - cost, 'as_of', now)
  return '0'
end
local wait = math.max(blocked - now, 0)
if rate > 0 then wait = math.max(wait, (cost + floor - restored) / rate) end
return tostring(math.max(wait, 0.01))
"""


# KEYS[1]: the shop's hash. ARGV: now, level, maximum or "", restore rate or "", request start.
_REPORT_LUA = """
local last = tonumber(redis.call('HGET', KEYS[1], 'reported_request_at') or '0')
local now = tonumber(ARGV[1])
local level = tonumber(ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'maximum', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'restore_rate', ARGV[4]) end
if tonumber(ARGV[5]) >= last then
  redis.call('HSET', KEYS[1], 'available', level, 'as_of', now, 'reported_request_at', ARGV[5])
  return 1
end
local maximum = tonumber(redis.call('HGET', KEYS[1], 'maximum') or ARGV[3])
local rate = tonumber(redis.call('HGET', KEYS[1], 'restore_rate') or '0')
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or maximum)
local as_of = tonumber(redis.call('HGET', KEYS[1], 'as_of') or ARGV[1])
local restored = math.min(maximum, available + rate * math.max(0, now - as_of))
redis.call('HSET', KEYS[1], 'available', math.min(restored, level), 'as_of', now)
return 0
"""

# KEYS[1]: the shop's hash. ARGV: until, 1 when throttled. Never shortens a longer block.
_BLOCK_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'blocked_until', ARGV[1]) end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'throttled_total', 1) end
return 1
"""


class RedisThrottle:
    """The same model in a Redis hash per shop, for deployments that configure Redis."""

    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self._reserve = self.redis.register_script(_RESERVE_LUA)
        self._report = self.redis.register_script(_REPORT_LUA)
        self._block = self.redis.register_script(_BLOCK_LUA)

    def key(self, shop_id: int) -> str:
        return f"console:throttle:{shop_id}"

    def reserve(self, shop_id: int, cost: float, *, bulk: bool) -> float:
        floor = settings.OUTBOUND_LIVE_RESERVE if bulk else 0.0
        defaults = _defaults()
        result = self._reserve(
            keys=[self.key(shop_id)],
            args=[time.time(), cost, floor, defaults["maximum"], defaults["restore_rate"]],
        )
        metrics.throttle_waited(float(result), bulk=bulk)
        return float(result)

    def bucket(self, shop_id: int) -> Bucket:
        values = {k.decode(): float(v) for k, v in self.redis.hgetall(self.key(shop_id)).items()}
        defaults = _defaults()
        now = time.time()
        maximum = values.get("maximum", defaults["maximum"])
        rate = values.get("restore_rate", defaults["restore_rate"])
        available = values.get("available", maximum)
        as_of = values.get("as_of", now)
        restored = min(maximum, available + rate * max(0.0, now - as_of))
        return Bucket(maximum, rate, restored, max(0.0, values.get("blocked_until", 0.0) - now))

    def refund(self, shop_id: int, cost: float) -> None:
        bucket = self.bucket(shop_id)
        self.redis.hset(
            self.key(shop_id), mapping={"available": min(bucket.maximum, bucket.available + cost), "as_of": time.time()}
        )

    def report(self, shop_id: int, reply: Reply, *, call_id: int, started: float) -> None:
        if reply.bucket_available is None:
            return
        level = max(0.0, reply.bucket_available - _points_in_flight(shop_id, call_id))
        self._report(
            keys=[self.key(shop_id)],
            args=[time.time(), level, reply.bucket_maximum or "", reply.restore_rate or "", started],
        )

    def block(self, shop_id: int, seconds: float, *, throttled: bool) -> None:
        self._block(keys=[self.key(shop_id)], args=[time.time() + seconds, "1" if throttled else "0"])


_backend = None


def throttle():
    """The configured backend (database unless OUTBOUND_THROTTLE_BACKEND is "redis")."""
    global _backend
    wanted = settings.OUTBOUND_THROTTLE_BACKEND
    if _backend is None or _backend.name != wanted:
        instance = RedisThrottle(settings.REDIS_URL) if wanted == "redis" else DatabaseThrottle()
        instance.name = wanted
        _backend = instance
    return _backend
