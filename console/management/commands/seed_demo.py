"""Demo users, a demo shop wired to the local simulator, and a little sample data.

Idempotent: a second run finds everything in place and changes nothing.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from console import roles
from incidents.models import Incident, IncidentUpdate
from integrations.models import Shop
from integrations.shops.services import register_shop

DEMO_USERS = [
    # username, role, is_staff (may open the read-mostly Django admin)
    ("support", roles.SUPPORT, False),
    ("service", roles.CUSTOMER_SERVICE, False),
    ("admin", roles.ADMIN, True),
    ("approver", roles.ADMIN, True),
]
DEMO_SHOP_DOMAIN = "demo-outdoors.myshopify.com"
DEMO_WEBHOOK_SECRET = "demo-webhook-secret-not-for-production"
DEMO_ACCESS_TOKEN = "shpat_demo_access_token_not_for_production"


class Command(BaseCommand):
    help = "Create demo users (support, service, admin, approver), a demo shop and sample data."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password for new demo users (default: generate one, printed once).")
        parser.add_argument("--simulator-url", default="http://127.0.0.1:8001", help="Base URL of the store simulator.")
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG=False (never on a real install).")

    def handle(self, *args, password=None, simulator_url, force, **options):
        if not settings.DEBUG and not force:
            raise CommandError("Refusing to create demo users with DEBUG=False. Pass --force if you really mean it.")
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        with transaction.atomic():
            created_users = self._users(password)
            self._shop(simulator_url)
            self._incident()
        if created_users:
            self.stdout.write(self.style.SUCCESS(f"Created demo users: {', '.join(created_users)}"))
            if generated:
                self.stdout.write(f"Their password (shown only now): {password}")
        else:
            self.stdout.write("Demo users already exist; their passwords are unchanged.")

    def _users(self, password: str) -> list[str]:
        User = get_user_model()
        created = []
        for username, role, is_staff in DEMO_USERS:
            user, was_created = User.objects.get_or_create(
                username=username, defaults={"is_staff": is_staff, "email": f"{username}@example.com"}
            )
            if was_created:
                user.set_password(password)
                user.save()
                created.append(username)
            user.groups.add(Group.objects.get(name=role))
        return created

    def _shop(self, simulator_url: str) -> Shop:
        shop = Shop.objects.filter(domain=DEMO_SHOP_DOMAIN).first()
        if shop is None:
            shop = register_shop(
                by=None,
                domain=DEMO_SHOP_DOMAIN,
                name="Demo Outdoors (simulated)",
                webhook_secret=DEMO_WEBHOOK_SECRET,
                access_token=DEMO_ACCESS_TOKEN,
                api_url=f"{simulator_url.rstrip('/')}/{DEMO_SHOP_DOMAIN}",
            )
        return shop

    def _incident(self) -> None:
        title = "Inventory sync delayed for demo-outdoors"
        if Incident.objects.filter(title=title).exists():
            return
        author = get_user_model().objects.get(username="support")
        incident = Incident.objects.create(
            title=title, severity=Incident.Severity.SEV3, status=Incident.Status.MONITORING, opened_by=author,
            lead=author, public_title="Stock levels may lag on the demo store",
            customer_impact="Stock shown in the shop may be up to 15 minutes behind.",
            customer_advice="Orders are safe and go through; if an item shows in stock but is not, we will contact the buyer.",
            severity_reasoning="Nothing customers can notice beyond a short stock delay. SEV3.",
            next_update_due_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
        IncidentUpdate.objects.create(
            incident=incident,
            author=author,
            audience=IncidentUpdate.Audience.ENGINEERING,
            confirmed=False,
            body="Suspect throttling after the bulk price import; checking the bucket headers.",
        )
        IncidentUpdate.objects.create(
            incident=incident,
            author=author,
            audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
            confirmed=True,
            body=(
                "Stock levels on the demo store may be up to 15 minutes behind. Orders are not affected. "
                "We will post the next update within the hour."
            ),
            next_update_at=timezone.now() + timedelta(hours=1),
        )
