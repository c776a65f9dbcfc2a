"""Structured logs: with LOG_FORMAT=json every line is a JSON object, and a line about a webhook, an
event's job or an outbound call carries the ids that lead back to its page (request, shop, webhook,
event, job, call); the request id is the response's X-Request-ID."""

import io
import json
import logging
import re
import subprocess
import sys
from logging.config import DictConfigurator

import pytest
from django.conf import settings

from console.logcontext import ContextFilter, bind
from integrations.models import Event
from integrations.outbound import queue
from integrations.outbound.sender import Sender
from integrations.processing.pump import process_pending
from tests.factories import ShopFactory
from tests.inbound.conftest import DOMAIN, SECRET, TOKEN, order_payload, sign
from tests.outbound import conftest as outbound_fixtures
from tests.processes import BASE_DIR, child_env

# A real store simulator for the outbound sender (the fixtures of tests/outbound).
simulator = outbound_fixtures.simulator
store_factory = outbound_fixtures.store_factory
store = outbound_fixtures.store

RECEIVER = "integrations.inbound.views"
RUNNER = "integrations.processing.runner"
SENDER = "integrations.outbound.sender"


def formatter(name: str) -> logging.Formatter:
    """The formatter settings.LOGGING configures under `name`, built as dictConfig builds it."""
    return DictConfigurator({}).configure_formatter(dict(settings.LOGGING["formatters"][name]))


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self, logger: str | None = None) -> list[dict]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in lines if logger is None or line["logger"] == logger]


@pytest.fixture
def json_log():
    """Every record, through the JSON formatter and context filter LOG_FORMAT=json puts on the
    console handler; the job and sender loggers at DEBUG (their success lines), as LOG_LEVEL=DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {name: logging.getLogger(name).level for name in (RUNNER, SENDER)}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def shop(db):
    return ShopFactory(domain=DOMAIN, webhook_secret=SECRET, access_token=TOKEN)


def post(client, body: bytes, *, webhook_id="wh-1", signature=None, **meta):
    return client.post(
        "/webhooks/shopify",
        data=body,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="orders/create",
        HTTP_X_SHOPIFY_SHOP_DOMAIN=DOMAIN,
        HTTP_X_SHOPIFY_WEBHOOK_ID=webhook_id,
        HTTP_X_SHOPIFY_HMAC_SHA256=signature or sign(body),
        **meta,
    )


def test_an_accepted_webhook_logs_one_json_line_with_its_webhook_event_shop_and_request_ids(client, shop, json_log):
    response = post(client, order_payload())
    assert response.status_code == 200
    event = Event.objects.get()
    [line] = json_log.lines(RECEIVER)
    assert line["level"] == "INFO" and line["logger"] == RECEIVER and line["timestamp"]
    assert line["message"] == f"webhook accepted: orders/create, event {event.pk}"
    assert line["outcome"] == "accepted"
    assert line["webhook_id"] == "wh-1" and line["event_id"] == event.pk and line["shop"] == DOMAIN
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert line["request_id"] == response["X-Request-ID"]
    assert SECRET not in json_log.stream.getvalue() and TOKEN not in json_log.stream.getvalue()

    again = post(client, order_payload())
    duplicate = json_log.lines(RECEIVER)[-1]
    assert duplicate["outcome"] == "duplicate" and duplicate["event_id"] == event.pk
    assert duplicate["request_id"] == again["X-Request-ID"] != response["X-Request-ID"]


def test_a_rejected_webhook_logs_its_reason_and_no_event_id(client, shop, json_log):
    response = post(client, order_payload(), webhook_id="wh-forged", signature=sign(b"something else"))
    assert response.status_code == 401
    [line] = json_log.lines(RECEIVER)
    assert line["outcome"] == "rejected" and line["reason"] == "HMAC signature does not match"
    assert line["webhook_id"] == "wh-forged" and line["shop"] == DOMAIN
    assert line["request_id"] == response["X-Request-ID"]
    assert "event_id" not in line


def test_processing_the_event_logs_lines_with_its_event_id_job_and_shop(client, shop, json_log):
    post(client, order_payload())
    event = Event.objects.get()
    assert process_pending() == 1
    jobs = json_log.lines(RUNNER)
    assert jobs, "one line per job run"
    for line in jobs:
        assert line["event_id"] == event.pk and line["shop"] == DOMAIN and line["job"]
        assert line["message"] == f"job {line['job']} of event {event.pk} succeeded on attempt 1"
        assert "request_id" not in line, "the webhook's request is over"
    assert {line["job"] for line in jobs} == set(event.jobs.values_list("name", flat=True))


def test_an_outbound_call_logs_its_call_id_and_shop(store, json_log):
    console_shop, sim = store
    target = sim.records("orders")[0]["admin_graphql_api_id"]
    call, _ = queue.enqueue(console_shop, "order.add_tags", {"id": target, "tags": ["vip"]}, origin="person")
    assert Sender(tag="logs").drain(timeout=30) == 1
    [line] = [line for line in json_log.lines(SENDER) if "applied" in line["message"]]
    assert line["outbound_call_id"] == call.pk and line["shop"] == console_shop.domain


def test_an_incoming_request_id_is_echoed_and_bound(client, shop, json_log):
    response = post(client, order_payload(), HTTP_X_REQUEST_ID="lb-7f3a.9:b=c+d/e")
    assert response["X-Request-ID"] == "lb-7f3a.9:b=c+d/e"
    assert json_log.lines(RECEIVER)[-1]["request_id"] == "lb-7f3a.9:b=c+d/e"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="probe-1")["X-Request-ID"] == "probe-1"


@pytest.mark.parametrize(
    "hostile",
    ["x" * 129, "abc\ndef", "abc\r\nSet-Cookie: a=b", "caf\u00e9", "two words", "", "<script>"],
)
def test_a_hostile_request_id_is_replaced_by_a_fresh_one(client, shop, json_log, hostile):
    response = post(client, order_payload(), HTTP_X_REQUEST_ID=hostile)
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    line = json_log.lines(RECEIVER)[-1]
    assert line["request_id"] == response["X-Request-ID"]
    if hostile:
        assert hostile not in json_log.stream.getvalue()


def test_a_field_passed_to_the_log_call_wins_over_the_bound_one_and_binds_nest():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    record.shop = "given.myshopify.com"
    with bind(shop="bound.myshopify.com", event_id=1), bind(job="sync", event_id=2, replay_id=None):
        ContextFilter().filter(record)
    assert (record.shop, record.event_id, record.job) == ("given.myshopify.com", 2, "sync")
    assert not hasattr(record, "replay_id"), "None is not bound"


def test_the_text_format_stays_readable_with_the_ids_appended():
    record = logging.LogRecord(RECEIVER, logging.INFO, __file__, 1, "webhook accepted: %s", ("orders/create",), None)
    with bind(request_id="r1", shop=DOMAIN, webhook_id="wh-1", event_id=7):
        ContextFilter().filter(record)
    text = formatter("text").format(record)
    assert text.endswith(
        f"INFO {RECEIVER} webhook accepted: orders/create [request_id=r1 shop={DOMAIN} webhook_id=wh-1 event_id=7]"
    )
    assert settings.LOG_FORMAT == "text", "human-readable is the default"


def test_log_format_json_makes_the_console_handler_write_json_lines():
    script = (
        "import django, logging; django.setup()\n"
        "from console.logcontext import bind\n"
        "with bind(event_id=5, job='sync'): logging.getLogger('integrations.x').warning('over %s', 'here')"
    )
    env = child_env(LOG_FORMAT="json", DJANGO_SETTINGS_MODULE="console.settings")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=BASE_DIR)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    [line] = [line for line in lines if line["logger"] == "integrations.x"]
    assert {k: line[k] for k in ("level", "message", "event_id", "job")} == {
        "level": "WARNING", "message": "over here", "event_id": 5, "job": "sync",
    }  # fmt: skip
    refused = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
    )
    assert refused.returncode != 0 and "LOG_FORMAT must be" in refused.stderr
