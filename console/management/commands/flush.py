"""Django's `flush`, allowed to empty the append-only audit table (console/append_only.py).

Django's test runner calls this command between transactional tests, so the database triggers that
refuse TRUNCATE (PostgreSQL) and DELETE (SQLite) on `console_auditentry` let exactly this
connection through while it runs, and nothing else.
"""

from django.core.management.commands import flush
from django.db import connections

from console.append_only import flushing


class Command(flush.Command):
    def handle(self, **options):
        with flushing(connections[options["database"]]):
            return super().handle(**options)
