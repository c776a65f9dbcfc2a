"""The outbound sender: take the best due call, wait for room in the shop's bucket, send it, record
the try, repeat. Any number run at once (a thread in every qcluster worker process, like the
event pumps), sharing one throttle per shop through the database or Redis.

A call is claimed (running, with the sender's name) before its points are taken from the bucket,
so a report from Shopify always counts it as in flight. A try's outcome is written only while the
sender still holds the claim; a sender that died mid-try leaves a running call whose claim
expires after OUTBOUND_CLAIM_LEASE_SECONDS (longer than any request may take), and recovery puts
it back in the queue: sent again with the same idempotency key, it cannot apply twice.

Holds (`integrations.shops`): a 403 / ACCESS_DENIED opens a scope hold for the operation's scopes,
so the other calls needing them wait instead of failing one by one; a 401 on a shop with a refresh
token refreshes it once and sends the call again in the same send, and a refresh Shopify refuses
opens a token hold that keeps all the shop's calls back. `due_calls` leaves held calls out. Every
answer's `X-Shopify-API-Version` and deprecation notice is recorded (`versions.record_answer`).
"""

import logging
import random
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.db.models import Exists, F, Max, OuterRef
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import metrics
from console.logcontext import bind
from integrations.models import OutboundAttempt, OutboundCall, Shop
from integrations.outbound.classify import NEXT_STEPS, RETRYABLE, TOKEN_HELD_NEXT_STEP, Verdict, classify
from integrations.outbound.classify import verdict as verdict_for
from integrations.outbound.client import AdminClient, Reply
from integrations.outbound.echo import link_early_echoes
from integrations.outbound.operations import get_operation
from integrations.outbound.queue import (
    due_calls,
    held_by_holds,
    release_held_calls,
    shopify_idempotency_key,
    stop_calls_of_uninstalled_shop,
)
from integrations.outbound.throttle import throttle
from integrations.processing.runner import worker_name
from integrations.shops.scopes import open_scope_holds
from integrations.shops.tokens import has_token_hold, hold_token, refresh_token_outcome
from integrations.shops.versions import record_answer

logger = logging.getLogger(__name__)

Status = OutboundCall.Status
IDLE_SLEEP = 0.2
RECOVER_EVERY = 5.0
MAX_LOOKS = 5  # due-call lookups per pass, each leaving out the shops found waiting


def retry_delay(attempt_number: int, verdict: Verdict, reply: Reply) -> float:
    """Seconds before the next try: at least Retry-After; for a throttled answer, until the bucket
    holds the call's cost; else exponential backoff with jitter."""
    if verdict.throttled:
        wait = reply.retry_after
        if wait is None and reply.requested_cost and reply.restore_rate:
            wait = max(0.0, (reply.requested_cost - (reply.bucket_available or 0)) / reply.restore_rate)
        return max(wait if wait is not None else 1.0, 0.05) * random.uniform(1.0, 1.2)  # jitter, not security
    backoff = min(settings.OUTBOUND_BACKOFF_CAP, settings.OUTBOUND_BACKOFF_BASE * 2 ** (attempt_number - 1))
    backoff *= random.uniform(0.5, 1.0)  # jitter, not security
    return max(backoff, reply.retry_after or 0.0)


class Sender:
    def __init__(self, tag: str = "sender") -> None:
        self.name = worker_name(tag)
        self._recovered = 0.0
        self.sent = 0

    def run_once(self) -> float:
        """Send at most one call. Returns 0 when one was sent, else the seconds worth sleeping."""
        now = time.monotonic()
        if now - self._recovered >= RECOVER_EVERY:
            self._recovered = now
            recover_lost_calls()
            release_held_calls()
            stop_uninstalled()
        wait = IDLE_SLEEP
        waiting_shops: set[int] = set()
        # A shop that must wait (no room in its bucket, a Retry-After) is left out of the next look,
        # so one shop's backlog never hides another shop's due calls.
        for _ in range(MAX_LOOKS):
            calls = list(due_calls(exclude_shops=waiting_shops))
            if not calls:
                break
            for call in calls:
                if call.shop_id in waiting_shops:
                    continue
                bulk = call.lane != OutboundCall.Lane.LIVE
                bucket_wait = throttle().bucket(call.shop_id).wait_for(call.expected_cost, bulk=bulk)
                if bucket_wait > 0:
                    waiting_shops.add(call.shop_id)
                    wait = min(wait, bucket_wait)
                    continue
                if not self._claim(call):
                    continue
                reserved_wait = throttle().reserve(call.shop_id, call.expected_cost, bulk=bulk)
                if reserved_wait > 0:
                    self._unclaim(call)
                    waiting_shops.add(call.shop_id)
                    wait = min(wait, reserved_wait)
                    continue
                self.send(call)
                return 0.0
            if not {call.shop_id for call in calls} - waiting_shops:
                continue  # every call seen belongs to a waiting shop: look past them
            break
        return wait

    def run_forever(self, stop: threading.Event) -> None:
        logger.info("outbound sender %s started", self.name)
        backoff = 1.0
        while not stop.is_set():
            try:
                wait = self.run_once()
                backoff = 1.0
            except DatabaseError:
                logger.exception("outbound sender %s: database unavailable, backing off %.0f s", self.name, backoff)
                close_old_connections()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:
                logger.exception("outbound sender %s: unexpected error", self.name)
                stop.wait(1.0)
                continue
            if wait > 0:
                stop.wait(min(wait, IDLE_SLEEP))

    def drain(self, timeout: float = 30.0) -> int:
        """Send until nothing is due (or `timeout`): for commands and tests. Returns calls sent."""
        deadline = time.monotonic() + timeout
        sent = 0
        while time.monotonic() < deadline:
            wait = self.run_once()
            if wait == 0:
                sent += 1
                continue
            unfinished = OutboundCall.objects.filter(status__in=[Status.QUEUED, Status.WAITING, Status.RUNNING])
            held = held_by_holds()  # calls a missing scope or an unusable token holds wait for a person
            if not (unfinished.exclude(held) if held is not None else unfinished).exists():
                break
            time.sleep(min(wait, IDLE_SLEEP))
        return sent

    # --- one call ---------------------------------------------------------------------------

    def _claim(self, call: OutboundCall) -> bool:
        source = call.status
        # "Shop not paused" as EXISTS, not a join: Django turns an UPDATE filtered across a join
        # into `id IN (SELECT ... status = source)`, and PostgreSQL does not re-check that subquery
        # against a row another sender has just claimed, so two senders could both claim (and
        # send) one call. With EXISTS the status test is on the updated row itself.
        moved = OutboundCall.STATES.move(
            OutboundCall.objects.filter(
                Exists(Shop.objects.filter(pk=OuterRef("shop_id"), queue_paused=False)), pk=call.pk
            ),
            source=source,
            target=Status.RUNNING,
            claimed_by=self.name,
            claimed_at=timezone.now(),
        )
        if moved:
            call.claimed_from, call.status = source, Status.RUNNING
        return bool(moved)

    def _unclaim(self, call: OutboundCall) -> None:
        mine = OutboundCall.objects.filter(pk=call.pk, claimed_by=self.name)
        held = OutboundCall.STATES.move(
            mine.filter(Exists(Shop.objects.filter(pk=OuterRef("shop_id"), queue_paused=True))),
            source=Status.RUNNING,
            target=Status.PAUSED,
            claimed_by="",
            claimed_at=None,
            reason="held: the shop's queue is paused",
        )
        if not held:
            OutboundCall.STATES.move(
                mine,
                source=Status.RUNNING,
                target=Status.WAITING if call.claimed_from == Status.WAITING else Status.QUEUED,
                claimed_by="",
                claimed_at=None,
            )

    def send(self, call: OutboundCall) -> Verdict:
        """Send a claimed call and record the try, with the call and its shop on every line logged
        meanwhile, and one line for the outcome (a success at DEBUG)."""
        with bind(outbound_call_id=call.pk, shop=call.shop.domain):
            verdict = self._send(call)
            if verdict.succeeded:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("outbound call %s (%s) applied", call.pk, call.operation)
            else:
                level = logging.INFO if verdict.retryable else logging.WARNING
                logger.log(level, "outbound call %s (%s) not applied (%s, %s): %s", call.pk, call.operation,
                           verdict.kind, verdict.classification, verdict.reason[:500])  # fmt: skip
        return verdict

    def _send(self, call: OutboundCall) -> Verdict:
        operation = get_operation(call.operation)
        variables = dict(call.input)
        if operation.idempotent:
            variables["idempotencyKey"] = shopify_idempotency_key(call)
        started = timezone.now()
        reply, verdict = self._request(call, operation, variables, started)
        # Numbered after every try on record, not the count this sender read: a sender that lost
        # its claim still records its try, and the next one must not collide with it.
        number = max(call.attempt_count, _last_try_number(call.pk)) + 1
        if verdict.kind == "unauthorized" and call.shop.refresh_token:
            reply, verdict, number, started = self._after_401(
                call, operation, variables, reply, verdict, number, started
            )
        if verdict.kind == "missing_scope" and operation.scopes:
            # The other calls needing the scope wait (held) instead of failing one by one; those
            # that do not need it still run. A scope check that finds it granted releases them.
            scopes = ", ".join(operation.scopes)
            open_scope_holds(
                call.shop, operation.scopes, reason=f"call {call.pk} ({call.operation}) was refused: {verdict.reason}"
            )
            verdict.next_step = f"Needs {scopes}. {verdict.next_step}"
        delay = retry_delay(number - call.retry_base, verdict, reply) if verdict.retryable else 0.0
        if verdict.throttled:
            throttle().block(call.shop_id, delay, throttled=True)
        elif reply.retry_after:
            throttle().block(call.shop_id, reply.retry_after, throttled=False)
        self._write(call, operation, reply, verdict, number, started, delay)
        metrics.outbound_try(call.operation, verdict)
        self.sent += 1
        return verdict

    def _request(self, call: OutboundCall, operation, variables: dict, started) -> tuple[Reply, Verdict]:
        reply = AdminClient(call.shop).graphql(operation.document, variables)
        throttle().report(call.shop_id, reply, call_id=call.pk, started=started.timestamp())
        return reply, classify(reply, operation)

    def _after_401(self, call, operation, variables, reply: Reply, first: Verdict, number: int, started):
        """Shopify refused the token of a shop with a refresh token: refresh it once and send the
        call again at once, in this send. Returns (reply, verdict, number, started) of the try to
        record last. If the refresh is refused, or the new token is refused too, the call fails
        (not retryable) with the reason and a token hold keeps the shop's other calls back: no
        call tries again until the shop has a working token."""
        state, message = self._renew_token(call)
        if state == "passing":  # Shopify's token endpoint was briefly unavailable: try again later
            later = verdict_for("server_error", f"{first.reason}; the token could not be refreshed for now ({message})")
            return reply, later, number, started
        if state == "held":  # another call found the token unusable meanwhile: wait with the others
            held = Verdict(
                succeeded=False,
                classification=RETRYABLE,
                kind="unauthorized",
                reason=f"{first.reason}; held with the shop's other calls: {message}",
                next_step=TOKEN_HELD_NEXT_STEP,
            )
            return reply, held, number, started
        if state == "refused":
            failed = verdict_for("unauthorized", f"{first.reason}: the token was revoked or expired, and {message}")
            failed.next_step = TOKEN_HELD_NEXT_STEP
            return reply, failed, number, started
        # Keep the refused try on record (the call stays claimed), then send again.
        self._record_try(
            call, operation, reply, first, number, started, note=f"the token was refreshed ({message}); sent again"
        )
        started = timezone.now()
        reply, again = self._request(call, operation, variables, started)
        number += 1
        if again.kind == "unauthorized":
            problem = "Shopify refused the token it had just issued (HTTP 401 right after a refresh)"
            Shop.objects.filter(pk=call.shop_id).update(token_problem=problem, updated_at=timezone.now())
            hold_token(call.shop, reason=f"{problem}; seen on call {call.pk}")
            again = verdict_for("unauthorized", f"{again.reason}: refused again right after refreshing the token")
            again.next_step = TOKEN_HELD_NEXT_STEP
        return reply, again, number, started

    def _renew_token(self, call: OutboundCall) -> tuple[str, str]:
        """A working token for the call's shop: refreshed now, or already by another sender since
        this one read the shop. Returns (state, message): "ok", "passing" (the refresh failed for a
        reason that may pass), "held" (a token hold is already open) or "refused"."""
        refused_token = call.shop.access_token
        fresh = call.shop = Shop.objects.get(pk=call.shop_id)
        if has_token_hold(fresh):
            return "held", fresh.token_problem or "the token cannot be refreshed"
        if fresh.access_token != refused_token:
            return "ok", "another sender refreshed it meanwhile"
        ok, message, passing = refresh_token_outcome(
            fresh, reason=f"HTTP 401 on outbound call {call.pk} ({call.operation})"
        )
        return ("ok" if ok else "passing" if passing else "refused"), message

    def _record_try(self, call, operation, reply: Reply, verdict: Verdict, number: int, started, *, note: str) -> None:
        """Record a try that is followed at once by another in the same send (the call stays running)."""
        attempt = self._attempt(call, operation, reply, verdict, number, started)
        attempt.outcome, attempt.message = OutboundAttempt.Outcome.RETRY, f"{verdict.reason}; {note}"[:2000]
        attempt.classification = RETRYABLE
        with transaction.atomic():
            attempt.save()
            OutboundCall.objects.filter(pk=call.pk, claimed_by=self.name).update(
                attempt_count=Greatest(F("attempt_count"), number), first_sent_at=call.first_sent_at or started
            )
        call.attempt_count = max(call.attempt_count, number)
        call.first_sent_at = call.first_sent_at or started

    def _attempt(self, call, operation, reply: Reply, verdict: Verdict, number: int, started) -> OutboundAttempt:
        return OutboundAttempt(
            call=call,
            number=number,
            started_at=started,
            duration_ms=reply.duration_ms,
            worker=self.name,
            request_summary=_summary(call, operation),
            http_status=reply.http_status,
            error_codes=reply.error_codes,
            user_errors=verdict.user_errors,
            throttled=verdict.throttled,
            requested_cost=reply.requested_cost,
            actual_cost=reply.actual_cost,
            bucket_available=reply.bucket_available,
            bucket_maximum=reply.bucket_maximum,
            restore_rate=reply.restore_rate,
            call_limit=reply.call_limit,
            retry_after=reply.retry_after,
            deprecation=reply.deprecation,
            request_id=reply.request_id,
            classification=verdict.classification or "",
            failure_kind=verdict.kind,
            message=verdict.reason[:2000],
            response_excerpt=reply.excerpt,
        )

    def _write(self, call, operation, reply: Reply, verdict: Verdict, number: int, started, delay: float) -> None:
        now = timezone.now()
        attempt = self._attempt(call, operation, reply, verdict, number, started)
        common = {
            "claimed_by": "",
            "claimed_at": None,
            "attempt_count": number,
            "failure_kind": verdict.kind,
            "first_sent_at": call.first_sent_at or started,
        }
        if verdict.succeeded:
            attempt.outcome, target = OutboundAttempt.Outcome.SUCCEEDED, Status.SUCCEEDED
            result = verdict.result if isinstance(verdict.result, dict) else None
            changes = {
                "result": result,
                "result_updated_at": _updated_at(result),
                "classification": None,
                "reason": f"applied on try {number}",
                "next_step": "",
                "next_attempt_at": None,
                "finished_at": now,
            }
        elif verdict.retryable and number - call.retry_base < settings.OUTBOUND_MAX_ATTEMPTS:
            attempt.outcome, target = OutboundAttempt.Outcome.RETRY, Status.WAITING
            due = now + timedelta(seconds=delay)
            changes = {
                "classification": RETRYABLE,
                "reason": f"try {number} {verdict.reason}; next try at {due:%H:%M:%S} UTC",
                "next_step": verdict.next_step,
                "next_attempt_at": due,
            }
        else:
            attempt.outcome, target = OutboundAttempt.Outcome.FAILED, Status.FAILED
            if verdict.retryable:
                reason = f"gave up after {number - call.retry_base} tries; last: {verdict.reason}"
                next_step = NEXT_STEPS["gave_up"][1]
            else:
                reason, next_step = verdict.reason, verdict.next_step
            changes = {
                "classification": verdict.classification,
                "reason": reason,
                "next_step": next_step,
                "next_attempt_at": None,
                "finished_at": now,
            }
        for _ in range(3):
            try:
                with transaction.atomic():
                    attempt.save()
                    moved = OutboundCall.STATES.move(
                        OutboundCall.objects.filter(pk=call.pk, claimed_by=self.name),
                        source=Status.RUNNING,
                        target=target,
                        **common,
                        **changes,
                    )
                    if not moved:
                        # Keep the count in step with the tries on record for whoever holds it now.
                        OutboundCall.objects.filter(pk=call.pk).update(
                            attempt_count=Greatest(F("attempt_count"), attempt.number)
                        )
                break
            except IntegrityError as exc:  # another sender recorded a try with this number meanwhile
                failure = exc
                attempt.pk, attempt.number = None, _last_try_number(call.pk) + 1
                common["attempt_count"] = attempt.number
        else:
            raise failure
        # The version that answered (written only when it changed) and any deprecation Shopify
        # reported (one statement, only when there is one): nothing more per call.
        record_answer(call.shop, api_version=reply.api_version, deprecation=reply.deprecation, call_id=call.pk)
        if moved and target == Status.SUCCEEDED and changes["result_updated_at"] and call.target_gid:
            link_early_echoes(call, changes["result_updated_at"], sent_at=common["first_sent_at"])
        if not moved:
            logger.warning(
                "sender %s lost its claim on call %s; its try is recorded, the call left alone", self.name, call.pk
            )


def _last_try_number(call_id: int) -> int:
    return OutboundAttempt.objects.filter(call_id=call_id).aggregate(n=Max("number"))["n"] or 0


def _summary(call: OutboundCall, operation) -> str:
    key = " @idempotent" if operation.idempotent else ""
    return f"POST graphql.json {operation.mutation}{key} on {call.target_gid or '-'} ({call.lane} lane)"


def _updated_at(result: dict | None):
    # A record's updatedAt; an inventory adjustment group has only its createdAt.
    value = (result or {}).get("updatedAt") or (result or {}).get("createdAt")
    return parse_datetime(value) if isinstance(value, str) else None


def recover_lost_calls() -> int:
    """Running calls whose sender has held them past the lease go back to the queue."""
    cutoff = timezone.now() - timedelta(seconds=settings.OUTBOUND_CLAIM_LEASE_SECONDS)
    return OutboundCall.STATES.move(
        OutboundCall.objects.filter(claimed_at__lt=cutoff),
        source=Status.RUNNING,
        target=Status.QUEUED,
        claimed_by="",
        claimed_at=None,
        reason="its sender stopped mid-try; sent again with the same idempotency key (applies at most once)",
    )


def stop_uninstalled() -> int:
    """Unsent calls of uninstalled shops fail with the reason (the uninstall itself does this at
    once; this catches a call enqueued in the moment before). Unsent calls are few: the status
    index finds them."""
    shop_ids = (
        OutboundCall.objects.filter(
            status__in=[Status.QUEUED, Status.WAITING, Status.PAUSED], shop__state=Shop.State.UNINSTALLED
        )
        .values_list("shop_id", flat=True)
        .distinct()[:100]
    )
    return sum(stop_calls_of_uninstalled_shop(shop) for shop in Shop.objects.filter(pk__in=list(shop_ids)))


__all__ = ["Sender", "recover_lost_calls", "retry_delay", "stop_uninstalled"]
