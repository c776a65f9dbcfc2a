"""Outbound calls to Shopify from the terminal: enqueue, list, show, pause, resume, send again,
and drain the queue by hand. Every action has `--json` for scripts."""

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Prefetch

from integrations.models import OutboundAttempt, OutboundCall, Shop
from integrations.outbound import queue
from integrations.outbound.operations import OPERATIONS, InvalidInput


class Command(BaseCommand):
    help = "Enqueue, inspect, pause and resume calls the console makes to Shopify's Admin API."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        enqueue = sub.add_parser(
            "enqueue", help="Put a call in the queue (prints it; an existing one for the key is reused)."
        )
        enqueue.add_argument("shop")
        enqueue.add_argument("operation", help=f"One of: {', '.join(sorted(OPERATIONS))}")
        enqueue.add_argument("--input", required=True, help="The mutation's variables, as JSON.")
        enqueue.add_argument("--lane", default="live", choices=OutboundCall.Lane.values)
        enqueue.add_argument("--key", default=None, help="Idempotency key (default: derived from the input).")
        enqueue.add_argument("--why", default="", help="Why the call is made (shown on its page).")
        enqueue.add_argument("--label", default="", help="How people find the record (order name, SKU...).")
        enqueue.add_argument(
            "--override-reason",
            default=None,
            help="Write fields the platform does not own, this once (an admin's --user; audited).",
        )
        listing = sub.add_parser("list", help="Calls, newest first.")
        listing.add_argument("--shop")
        listing.add_argument("--status", choices=OutboundCall.Status.values)
        listing.add_argument("--operation")
        listing.add_argument("--limit", type=int, default=100)
        show = sub.add_parser("show", help="One call with every try.")
        show.add_argument("id", type=int)
        for name, verb in (("pause", "Hold"), ("resume", "Release")):
            action = sub.add_parser(name, help=f"{verb} a shop's outbound calls (audited).")
            action.add_argument("shop")
            action.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        again = sub.add_parser("send-again", help="Send a failed call again with the same key (audited).")
        again.add_argument("id", type=int)
        again.add_argument("--reason", required=True)
        stock = sub.add_parser("push-stock", help="Set a stock level in Shopify to the warehouse's count.")
        stock.add_argument("shop")
        stock.add_argument("--item", type=int, required=True, help="Inventory item id.")
        stock.add_argument("--location", type=int, required=True, help="Location id.")
        stock.add_argument("--quantity", type=int, required=True, help="Available quantity to set.")
        stock.add_argument(
            "--compare-to", type=int, default=None, help="The quantity Shopify should hold now (default: last synced)."
        )
        stock.add_argument("--lane", default="live", choices=OutboundCall.Lane.values)
        product = sub.add_parser("push-product", help="Send the platform's product title/description to Shopify.")
        product.add_argument("shop")
        product.add_argument("--product", type=int, required=True, help="Product id.")
        product.add_argument("--title", default=None)
        product.add_argument("--description", default=None, help="Description HTML.")
        product.add_argument("--lane", default="live", choices=OutboundCall.Lane.values)
        drain = sub.add_parser("send", help="Send due calls from this process until none is due (or --timeout).")
        drain.add_argument("--timeout", type=float, default=30.0)
        for action in sub.choices.values():
            action.add_argument("--json", action="store_true", help="Print JSON.")
            if action.prog.split()[-1] in ("enqueue", "pause", "resume", "send-again", "push-stock", "push-product"):
                action.add_argument("--user", default=None, help="Who is acting (must be allowed to send calls).")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        handler = getattr(self, "_" + action.replace("-", "_"))
        try:
            handler(**options)
        except (queue.QueueError, InvalidInput, PermissionDenied) as exc:
            raise CommandError(str(exc)) from exc

    # --- helpers ------------------------------------------------------------------------------

    def _user(self, username):
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None or not user.has_perm("integrations.send_outbound"):
            raise CommandError(f"{username!r} is not an active user allowed to send calls to Shopify.")
        return user

    def _shop(self, domain: str) -> Shop:
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        return shop

    def _call(self, pk: int) -> OutboundCall:
        call = OutboundCall.objects.select_related("shop").filter(pk=pk).first()
        if call is None:
            raise CommandError(f"No outbound call {pk}.")
        return call

    def _print(self, data, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str) if self.as_json else text)

    # --- actions ------------------------------------------------------------------------------

    def _enqueue(self, *, shop, operation, input, lane, key, why, label, user, override_reason, **_):
        try:
            variables = json.loads(input)
        except ValueError as exc:
            raise CommandError(f"--input is not JSON: {exc}") from exc
        by = self._user(user)
        call, created = queue.enqueue(
            self._shop(shop),
            operation,
            variables,
            origin=OutboundCall.Origin.PERSON,
            origin_ref=f"command:{by.get_username() if by else 'terminal'}",
            lane=lane,
            key=key,
            why=why or "enqueued from the terminal",
            label=label,
            by=by,
            override_reason=override_reason,
        )
        data = {**queue.call_json(call), "created": created}
        verb = "queued" if created else "already there"
        self._print(data, f"call {call.pk} ({call.operation} on {call.target_gid}): {verb}, status {call.status}")

    def _list(self, *, shop, status, operation, limit, **_):
        calls = OutboundCall.objects.select_related("shop").order_by("-id")
        if shop:
            calls = calls.filter(shop=self._shop(shop))
        if status:
            calls = calls.filter(status=status)
        if operation:
            calls = calls.filter(operation=operation)
        calls = list(
            calls.prefetch_related(Prefetch("attempts", queryset=OutboundAttempt.objects.order_by("number")), "echoes")[
                : max(1, min(limit, 1000))
            ]
        )
        data = [queue.call_json(call) for call in calls]
        lines = [
            f"{c.pk:>7}  {c.status:<9} {c.lane:<9} {c.operation:<16} {c.shop.domain}  {c.target_label or c.target_gid}"
            f"  tries={c.attempt_count}  {c.reason[:80]}"
            for c in calls
        ]
        self._print(data, "\n".join(lines) or "No outbound calls.")

    def _show(self, *, id, **_):
        call = self._call(id)
        data = queue.call_json(call)
        lines = [
            f"call {call.pk}: {call.operation} on {call.target_gid} ({call.shop.domain})",
            f"status: {call.status}  classification: {call.classification or '-'}  lane: {call.lane}",
            f"origin: {call.origin} {call.origin_ref}  key: {call.idempotency_key}",
            f"reason: {call.reason or '-'}",
            f"next step: {call.next_step or '-'}",
        ]
        for attempt in data["attempts"]:
            lines.append(
                f"  try {attempt['number']}: HTTP {attempt['http_status']} {attempt['outcome']} "
                f"codes={attempt['error_codes']} throttled={attempt['throttled']} {attempt['duration_ms']} ms"
            )
        self._print(data, "\n".join(lines))

    def _pause(self, *, shop, reason, user, **_):
        shop = self._shop(shop)
        held = queue.pause_shop(shop, by=self._user(user), reason=reason)
        self._print({"shop": shop.domain, "paused": True, "held": held}, f"{shop.domain}: paused, {held} calls held.")

    def _resume(self, *, shop, reason, user, **_):
        shop = self._shop(shop)
        released = queue.resume_shop(shop, by=self._user(user), reason=reason)
        self._print(
            {"shop": shop.domain, "paused": False, "released": released},
            f"{shop.domain}: resumed, {released} calls released.",
        )

    def _send_again(self, *, id, reason, user, **_):
        call = self._call(id)
        if not queue.send_again(call, by=self._user(user), reason=reason):
            raise CommandError(f"call {call.pk} is {call.status}, not failed: nothing to send again.")
        call.refresh_from_db()
        self._print(queue.call_json(call), f"call {call.pk} is back in the queue ({call.status}).")

    def _push_stock(self, *, shop, item, location, quantity, compare_to, lane, user, **_):
        from integrations.outbound.flows import push_stock_level

        by = self._user(user)
        call, created = push_stock_level(
            self._shop(shop),
            inventory_item_id=item,
            location_id=location,
            quantity=quantity,
            compare_to=compare_to,
            lane=lane,
            by=by,
            origin_ref=f"command:{by.get_username() if by else 'terminal'}",
        )
        self._print({**queue.call_json(call), "created": created}, f"call {call.pk}: {call.why} ({call.status})")

    def _push_product(self, *, shop, product, title, description, lane, user, **_):
        from integrations.outbound.flows import push_product_content

        by = self._user(user)
        call, created = push_product_content(
            self._shop(shop),
            product_id=product,
            title=title,
            description_html=description,
            lane=lane,
            by=by,
            origin_ref=f"command:{by.get_username() if by else 'terminal'}",
        )
        self._print({**queue.call_json(call), "created": created}, f"call {call.pk}: {call.operation} ({call.status})")

    def _send(self, *, timeout, **_):
        from integrations.outbound.sender import Sender

        sent = Sender(tag="command").drain(timeout=timeout)
        self._print({"sent": sent}, f"{sent} tries sent.")
