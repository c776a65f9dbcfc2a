from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from incidents.models import Incident, IncidentAction, IncidentUpdate
from integrations.models import Attempt, Delivery, Event, Job, Shop

TEST_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save()

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))


class ShopFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shop

    domain = factory.Sequence(lambda n: f"shop-{n}.myshopify.com")
    name = factory.Sequence(lambda n: f"Shop {n}")
    webhook_secret = factory.Sequence(lambda n: f"whsec-test-{n:06d}-abcdef")
    access_token = factory.Sequence(lambda n: f"shpat_test_{n:06d}_token")


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Incident {n}")
    severity = Incident.Severity.SEV3
    opened_by = factory.SubFactory(UserFactory)


class IncidentUpdateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentUpdate

    incident = factory.SubFactory(IncidentFactory)
    body = factory.Sequence(lambda n: f"Update {n}")
    author = factory.SelfAttribute("incident.opened_by")


class IncidentActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentAction

    incident = factory.SubFactory(IncidentFactory)
    kind = IncidentAction.Kind.CONTAINMENT
    title = factory.Sequence(lambda n: f"Action {n}")


# --- Event log ------------------------------------------------------------------------------


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    shop = factory.SubFactory(ShopFactory)
    webhook_id = factory.Sequence(lambda n: f"wh-{n:08d}-0000-4000-8000-000000000000")
    topic = "orders/create"
    status = Event.Status.QUEUED
    # What the check constraints require of each status.
    processed_count = factory.LazyAttribute(lambda e: 1 if e.status == Event.Status.PROCESSED else 0)
    processed_at = factory.LazyAttribute(lambda e: timezone.now() if e.status == Event.Status.PROCESSED else None)
    claimed_by = factory.LazyAttribute(lambda e: "test-host:1:pump1" if e.status == Event.Status.CLAIMED else "")
    claimed_at = factory.LazyAttribute(lambda e: timezone.now() if e.status == Event.Status.CLAIMED else None)
    next_attempt_at = factory.LazyAttribute(
        lambda e: timezone.now() + timedelta(minutes=1) if e.status == Event.Status.RETRY_WAIT else None
    )


class DeliveryFactory(factory.django.DjangoModelFactory):
    """An accepted delivery of `event` by default; pass event=None with outcome/response_status for a rejected one."""

    class Meta:
        model = Delivery

    event = factory.SubFactory(EventFactory)
    shop = factory.LazyAttribute(lambda d: d.event.shop if d.event else None)
    shop_domain = factory.LazyAttribute(lambda d: d.event.shop.domain if d.event else "unknown.myshopify.com")
    topic = factory.LazyAttribute(lambda d: d.event.topic if d.event else "orders/create")
    webhook_id = factory.LazyAttribute(lambda d: d.event.webhook_id if d.event else "")
    headers = factory.LazyAttribute(lambda d: {"X-Shopify-Topic": d.topic, "X-Shopify-Hmac-Sha256": "[redacted]"})
    body = b'{"id": 1}'
    body_size = factory.LazyAttribute(lambda d: len(d.body or b""))
    signature_valid = factory.LazyAttribute(lambda d: d.event is not None)
    outcome = factory.LazyAttribute(lambda d: Delivery.Outcome.ACCEPTED if d.event else Delivery.Outcome.REJECTED)
    response_status = factory.LazyAttribute(lambda d: 200 if d.event else 401)
    reason = factory.LazyAttribute(lambda d: "" if d.event else "HMAC signature did not match")
    duration_ms = 3.5


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    event = factory.SubFactory(EventFactory)
    name = factory.Sequence(lambda n: f"job_{n}")
    status = Job.Status.SUCCEEDED
    finished_at = factory.LazyAttribute(
        lambda j: timezone.now() if j.status in (Job.Status.SUCCEEDED, Job.Status.FAILED) else None
    )
    next_attempt_at = factory.LazyAttribute(
        lambda j: timezone.now() + timedelta(minutes=1) if j.status == Job.Status.RETRY_WAIT else None
    )


class AttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attempt

    job = factory.SubFactory(JobFactory)
    number = factory.Sequence(lambda n: n + 1)
    outcome = Attempt.Outcome.SUCCEEDED


# --- Outbound calls -------------------------------------------------------------------------


class OutboundCallFactory(factory.django.DjangoModelFactory):
    """An `order.add_tags` call for an order; pass status= and the fields its constraints need follow."""

    class Meta:
        model = "integrations.OutboundCall"

    shop = factory.SubFactory(ShopFactory)
    operation = "order.add_tags"
    target_gid = factory.Sequence(lambda n: f"gid://shopify/Order/{820000 + n}")
    target_label = factory.Sequence(lambda n: f"#{5000 + n}")
    input = factory.LazyAttribute(lambda c: {"id": c.target_gid, "tags": ["vip"]})
    origin = "job"
    origin_ref = factory.Sequence(lambda n: f"job:{n}")
    idempotency_key = factory.Sequence(lambda n: f"job:{n}:order.add_tags:test{n:06d}")
    status = "queued"
    finished_at = factory.LazyAttribute(lambda c: timezone.now() if c.status in ("succeeded", "failed") else None)
    next_attempt_at = factory.LazyAttribute(
        lambda c: timezone.now() + timedelta(minutes=1) if c.status == "waiting" else None
    )
    claimed_by = factory.LazyAttribute(lambda c: "test-host:1:sender" if c.status == "running" else "")
    claimed_at = factory.LazyAttribute(lambda c: timezone.now() if c.status == "running" else None)


class OutboundAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "integrations.OutboundAttempt"

    call = factory.SubFactory(OutboundCallFactory)
    number = factory.Sequence(lambda n: n + 1)
    outcome = "succeeded"
    http_status = 200
    worker = "test-host:1:sender"
    duration_ms = 120
    request_summary = factory.LazyAttribute(lambda a: f"POST graphql.json tagsAdd on {a.call.target_gid} (live lane)")
