"""Privacy requests from the command line, as on the Privacy page.

    manage.py privacy list [--state pending|completed|overdue] [--shop DOMAIN] [--json]
    manage.py privacy export ID --user U [--output FILE]

`export` writes a data-request export (JSON) for an admin named by --user, audited like the page's
download; to standard output unless --output is given.
"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from integrations.models import PrivacyRequest, Shop
from integrations.privacy.selectors import STATES, privacy_requests
from integrations.privacy.selectors import as_json as request_json
from integrations.privacy.services import download_export


class Command(BaseCommand):
    help = "List privacy requests with their deadlines and proof, or export a data request (admins, audited)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Privacy requests, newest first.")
        listing.add_argument("--state", choices=[s for s in STATES if s], default="")
        listing.add_argument("--shop", help="Shop domain.")
        listing.add_argument("--json", dest="as_json", action="store_true")
        export = sub.add_parser("export", help="Write a data-request export (audited).")
        export.add_argument("request_id", type=int)
        export.add_argument("--user", required=True, help="The admin taking the export.")
        export.add_argument("--output", help="File to write (default: standard output).")

    def handle(self, *args, action, **options):
        if action == "list":
            self._list(state=options["state"], shop_domain=options["shop"], as_json=options["as_json"])
        else:
            self._export(options["request_id"], username=options["user"], output=options["output"])

    def _list(self, *, state: str, shop_domain: str | None, as_json: bool) -> None:
        shop = None
        if shop_domain:
            shop = Shop.objects.filter(domain=shop_domain.strip().lower()).first()
            if shop is None:
                raise CommandError(f"No shop {shop_domain}.")
        rows = [request_json(r) for r in privacy_requests(state=state, shop=shop).order_by("-id")[:500]]
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No privacy requests.")
        for row in rows:
            late = " OVERDUE" if row["overdue"] else ""
            self.stdout.write(f"{row['id']}\t{row['kind']}\t{row['shop']}\t{row['state']}{late}\tdue {row['due_at']}")

    def _export(self, request_id: int, *, username: str, output: str | None) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        record = PrivacyRequest.objects.select_related("shop").filter(pk=request_id).first()
        if record is None:
            raise CommandError(f"No privacy request {request_id}.")
        try:
            body = download_export(request_record=record, by=user)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        if output:
            Path(output).write_bytes(body)
            self.stderr.write(f"Wrote {len(body)} bytes to {output} (audited).")
        else:
            self.stdout.write(body.decode())
