"""On PostgreSQL the database itself refuses UPDATE and DELETE on the audit table, so not even a raw
SQL statement or a bug in our code can rewrite history. (0004 adds a TRUNCATE trigger here and
triggers on SQLite, with the one exception `manage.py flush` needs: see its docstring.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION console_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'console_auditentry is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER console_auditentry_append_only
    BEFORE UPDATE OR DELETE ON console_auditentry
    FOR EACH ROW EXECUTE FUNCTION console_auditentry_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS console_auditentry_append_only ON console_auditentry;
DROP FUNCTION IF EXISTS console_auditentry_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # None: the "%" in RAISE is not a placeholder


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("console", "0002_roles")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
