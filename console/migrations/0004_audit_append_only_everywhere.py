"""The audit trail is append-only in the database on both engines, TRUNCATE included.

PostgreSQL already refuses UPDATE and DELETE with a row trigger (0003). Row triggers do not fire
on TRUNCATE, so this adds a statement trigger that refuses it too. SQLite gets triggers that refuse
UPDATE and DELETE (`DELETE FROM` without WHERE as well: with a trigger on the table SQLite deletes
row by row, and the trigger stops the first).

One caller must be able to empty the table: `manage.py flush`, which Django's test runner also runs
between transactional tests (it TRUNCATEs every table on PostgreSQL and DELETEs from each on
SQLite). Rather than leave a hole for everyone, the triggers ask whether the statement comes from a
flush, and only our `flush` command (console/management/commands/flush.py) says yes, for its own
connection, while it runs:

- PostgreSQL: the TRUNCATE trigger lets the statement through when the session setting
  `console.audit_flush` is `on`. UPDATE and DELETE have no such exception (flush never uses them).
- SQLite: the DELETE trigger calls `console_audit_flushing()`, a function Django registers on each
  of its connections (console/append_only.py) that answers 1 only inside `flush`. SQL cannot turn it
  on, and outside Django (the sqlite3 shell) the function does not exist, so the DELETE fails there
  too. UPDATE is refused unconditionally.

The triggers guard against code and hands, not against the table's owner, who can drop or disable
them: in production the app runs as a role that does not own its tables and has no UPDATE, DELETE or
TRUNCATE on this one (README, Production); migrations run as the owner.

SQLite rebuilds a table to alter it (new table, copy, drop, rename), which drops its triggers: a
later migration that alters console_auditentry must create these again (tests/test_audit_trail.py
fails if they are missing).
"""

from django.db import migrations

PG_CREATE = """
CREATE OR REPLACE FUNCTION console_auditentry_no_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('console.audit_flush', true) = 'on' THEN
        RETURN NULL;  -- manage.py flush (and so the test runner), see console/append_only.py
    END IF;
    RAISE EXCEPTION 'console_auditentry is append-only (TRUNCATE refused)'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER console_auditentry_no_truncate
    BEFORE TRUNCATE ON console_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION console_auditentry_no_truncate();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS console_auditentry_no_truncate ON console_auditentry;
DROP FUNCTION IF EXISTS console_auditentry_no_truncate();
"""

SQLITE_CREATE = [
    """
    CREATE TRIGGER console_auditentry_no_update BEFORE UPDATE ON console_auditentry
    BEGIN SELECT RAISE(ABORT, 'console_auditentry is append-only (UPDATE refused)'); END
    """,
    """
    CREATE TRIGGER console_auditentry_no_delete BEFORE DELETE ON console_auditentry
    WHEN NOT console_audit_flushing()
    BEGIN SELECT RAISE(ABORT, 'console_auditentry is append-only (DELETE refused)'); END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS console_auditentry_no_update",
    "DROP TRIGGER IF EXISTS console_auditentry_no_delete",
]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("console", "0003_audit_append_only_trigger")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
