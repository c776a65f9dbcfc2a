"""The audit trail's database guard, as the application sees it.

Migrations 0003 and 0004 make the database itself refuse to rewrite `console_auditentry`: UPDATE and
DELETE always (PostgreSQL row trigger; SQLite triggers), TRUNCATE on PostgreSQL (statement trigger).
The one sanctioned way to empty the table is `manage.py flush`, which Django's test runner also
calls between transactional tests (TRUNCATE on PostgreSQL, DELETE on SQLite). Our `flush` command
(console/management/commands/flush.py) wraps Django's in `flushing()`, which lets exactly that
connection through while it runs:

- PostgreSQL: the session setting `console.audit_flush = on`, which the TRUNCATE trigger reads. Any
  session could set it, so it guards against accidents (a stray TRUNCATE, a script), not against a
  role that means harm: that is what running the app as a role that does not own its tables, with
  no UPDATE, DELETE or TRUNCATE on the audit table, is for (README, Production).
- SQLite: a SQL function, `console_audit_flushing()`, that Django registers on each of its own
  connections and that answers 1 only inside `flushing()`. SQL cannot switch it on; a connection
  opened outside Django (the sqlite3 shell) has no such function, so its DELETE fails too.
"""

from collections.abc import Iterator
from contextlib import contextmanager

FLUSH_SETTING = "console.audit_flush"
SQLITE_FUNCTION = "console_audit_flushing"
_FLAG = "_console_audit_flushing"


def register_sqlite_function(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: give each SQLite connection the function its DELETE trigger asks."""
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        SQLITE_FUNCTION, 0, lambda: 1 if getattr(connection, _FLAG, False) else 0, deterministic=False
    )


@contextmanager
def flushing(connection) -> Iterator[None]:
    """Let this connection empty the audit table (for `flush` only; see the module docstring)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', false)", [FLUSH_SETTING])
        try:
            yield
        finally:
            # If the flush failed inside an outer transaction, the rollback undoes the setting too.
            if not connection.needs_rollback:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config(%s, '', false)", [FLUSH_SETTING])
    else:
        setattr(connection, _FLAG, True)
        try:
            yield
        finally:
            setattr(connection, _FLAG, False)
