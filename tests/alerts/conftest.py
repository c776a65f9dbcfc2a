import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from incidents.models import Audience, Incident, NotificationList
from integrations.models import WorkerHeartbeat


def list_address(audience: str, severity: str) -> str:
    return f"{audience}-{severity}@example.com"


@pytest.fixture(autouse=True)
def lists(db):
    """Every audience's list for every severity has its own address, so a mail's recipients say
    which list was chosen."""
    for audience in Audience.values:
        for severity in Incident.Severity.values:
            NotificationList.objects.create(
                audience=audience, severity=severity, emails=list_address(audience, severity)
            )


@pytest.fixture(autouse=True)
def beating(db):
    """A pump that beats, so the heartbeat rule is quiet unless a test stops it."""
    return WorkerHeartbeat.objects.create(name="test-host:1:pump1", beat_at=timezone.now())


@pytest.fixture(autouse=True)
def _no_slack(settings):
    settings.ALERT_SLACK_WEBHOOK_URL = ""


class ChatServer:
    """A real HTTP server standing in for a Slack-compatible incoming webhook."""

    def __init__(self, status: int = 200):
        self.received: list[dict] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.paths.append(self.path)
                outer.received.append(json.loads(body))
                reply = b"ok" if status < 300 else b"invalid_token"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0001/B0002/sekrit-token"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
