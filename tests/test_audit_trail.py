import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from console.audit import record_action
from console.models import AuditEntry
from tests.factories import ShopFactory


@pytest.fixture
def entry(db, admin_user):
    shop = ShopFactory()
    return record_action(
        actor=admin_user, verb="shop.update", target=shop, before={"name": "a"}, after={"name": "b"}, reason="typo"
    )


def _unchanged(entry):
    fresh = AuditEntry.objects.get(pk=entry.pk)
    return (fresh.verb, fresh.reason, fresh.before, fresh.after) == (
        "shop.update",
        "typo",
        {"name": "a"},
        {"name": "b"},
    )


def test_model_refuses_update_and_delete(entry):
    entry.reason = "rewritten"
    with pytest.raises(PermissionDenied):
        entry.save()
    with pytest.raises(PermissionDenied):
        entry.delete()
    with pytest.raises(PermissionDenied):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(PermissionDenied):
        AuditEntry.objects.all().delete()
    assert _unchanged(entry)


def test_admin_cannot_change_or_delete(client, entry, admin_user):
    client.force_login(admin_user)
    change_url = reverse("admin:console_auditentry_change", args=[entry.pk])
    delete_url = reverse("admin:console_auditentry_delete", args=[entry.pk])
    # The admin role may view entries, read-only.
    view = client.get(change_url)
    assert view.status_code == 200
    assert b'name="reason"' not in view.content
    assert client.post(change_url, {"reason": "rewritten", "verb": "x"}).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:console_auditentry_changelist")
    response = client.post(changelist, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert client.get(reverse("admin:console_auditentry_add")).status_code == 403
    assert _unchanged(entry)


def test_even_a_superuser_cannot_edit_through_the_admin(client, entry, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)
    change_url = reverse("admin:console_auditentry_change", args=[entry.pk])
    assert client.post(change_url, {"reason": "rewritten"}).status_code == 403
    assert client.post(reverse("admin:console_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert _unchanged(entry)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_console_audit_pages_accept_only_get(client, entry, admin_user, method):
    client.force_login(admin_user)
    urls = [
        reverse("audit_list"),
        reverse("audit_history", args=["integrations", "shop", entry.target_id]),
    ]
    for url in urls:
        assert getattr(client, method)(url).status_code == 405
    assert _unchanged(entry)


@pytest.mark.postgres
def test_postgresql_trigger_refuses_raw_sql(entry):
    if connection.vendor != "postgresql":
        pytest.skip("the database trigger exists on PostgreSQL only")
    for statement in ("UPDATE console_auditentry SET reason = 'x'", "DELETE FROM console_auditentry"):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert _unchanged(entry)


def test_list_filters_and_history(client, admin_user, support_user):
    shop_a, shop_b = ShopFactory(), ShopFactory()
    record_action(actor=admin_user, verb="shop.update", target=shop_a, reason="first")
    record_action(actor=support_user, verb="shop.pause", target=shop_a, reason="second")
    record_action(actor=admin_user, verb="shop.update", target=shop_b, reason="third")
    client.force_login(support_user)

    by_actor = client.get(reverse("audit_list"), {"actor": support_user.username}).content.decode()
    assert "second" in by_actor and "first" not in by_actor and "third" not in by_actor

    by_verb = client.get(reverse("audit_list"), {"verb": "shop.update"}).content.decode()
    assert "first" in by_verb and "third" in by_verb and "second" not in by_verb

    by_prefix = client.get(reverse("audit_list"), {"verb": "shop"}).content.decode()
    assert "first" in by_prefix and "second" in by_prefix and "third" in by_prefix

    # The type list offers the kinds of record the trail is about, not Django's internal tables.
    page = client.get(reverse("audit_list")).content.decode()
    assert 'value="integrations.shop"' in page
    assert 'value="auth.permission"' not in page and 'value="integrations.workerheartbeat"' not in page

    by_object = client.get(reverse("audit_list"), {"target_type": "integrations.shop", "target_id": shop_b.pk})
    assert "third" in by_object.content.decode() and "first" not in by_object.content.decode()

    history = client.get(reverse("audit_history", args=["integrations", "shop", shop_a.pk])).content.decode()
    assert "first" in history and "second" in history and "third" not in history


def test_list_paginates_by_keyset_without_a_query_per_row(client, admin_user, django_assert_max_num_queries):
    shop = ShopFactory()
    for i in range(120):
        record_action(actor=admin_user, verb="shop.update", target=shop, reason=f"change-{i:03d}")
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):
        first = client.get(reverse("audit_list")).content.decode()
    assert "change-119" in first and "change-070" in first and "change-069" not in first
    cursor = first.split("cursor=")[1].split('"')[0]
    second = client.get(reverse("audit_list"), {"cursor": cursor}, headers={"HX-Request": "true"}).content.decode()
    assert "change-069" in second and "change-070" not in second and "<html" not in second


def test_payloads_are_escaped(client, admin_user):
    shop = ShopFactory()
    record_action(
        actor=admin_user, verb="shop.update", target=shop, reason="<script>alert(1)</script>", after={"x": "<b>"}
    )
    client.force_login(admin_user)
    html = client.get(reverse("audit_list")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("object_id", ["not-a-number", "999999"])
def test_history_of_a_missing_or_malformed_object_is_404(client, admin_user, object_id):
    client.force_login(admin_user)
    assert client.get(reverse("audit_history", args=["integrations", "shop", object_id])).status_code == 404
    assert client.get(reverse("audit_history", args=["auth", "user", admin_user.pk])).status_code == 404


# --- The database itself refuses to rewrite the trail (migrations 0003 and 0004) ------------------

REFUSED = "append-only"


def _refused(statement: str) -> None:
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE console_auditentry SET reason = 'rewritten'",
        "DELETE FROM console_auditentry WHERE verb = 'shop.update'",
        "DELETE FROM console_auditentry",  # no WHERE: on SQLite the trigger still runs for each row
    ],
)
def test_raw_sql_cannot_rewrite_or_delete_entries(entry, statement):
    _refused(statement)
    assert _unchanged(entry)


def test_the_base_manager_cannot_rewrite_or_delete_entries(entry):
    """`_base_manager` skips the model's guards (plain QuerySet); the database still says no."""
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        AuditEntry._base_manager.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        AuditEntry._base_manager.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        AuditEntry._base_manager.all().delete()
    assert _unchanged(entry)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # committed rows, as on a live database (no pending FK checks)
def test_postgresql_refuses_truncate(admin_user):
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite's DELETE without WHERE is tested above")
    entry = record_action(
        actor=admin_user,
        verb="shop.update",
        target=ShopFactory(),
        before={"name": "a"},
        after={"name": "b"},
        reason="typo",
    )
    _refused("TRUNCATE console_auditentry")
    _refused("TRUNCATE django_content_type CASCADE")  # reaches the trail through target_type
    # A session setting nobody but `flush` sets is the only way through, and it is off here.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('console.audit_flush', true)")
        assert cursor.fetchone()[0] in (None, "")
    assert _unchanged(entry)


def test_the_triggers_exist(db):
    """A later migration that rebuilds the table on SQLite would drop them; this says so."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'console_auditentry'::regclass AND NOT tgisinternal"
            )
            expected = {"console_auditentry_append_only", "console_auditentry_no_truncate"}
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'console_auditentry'")
            expected = {"console_auditentry_no_update", "console_auditentry_no_delete"}
        assert {row[0] for row in cursor.fetchall()} == expected


@pytest.mark.django_db(transaction=True)
def test_only_flush_empties_the_trail_and_only_while_it_runs(admin_user):
    """`manage.py flush` (what the test runner calls between transactional tests) may empty the
    table; right after, an ordinary statement on the same connection is refused again."""
    record_action(actor=admin_user, verb="shop.update", reason="before flush")
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEntry.objects.exists()
    kept = record_action(actor=None, verb="shop.update", reason="after flush")
    statements = ["DELETE FROM console_auditentry", "UPDATE console_auditentry SET reason = 'x'"]
    if connection.vendor == "postgresql":
        statements.append("TRUNCATE console_auditentry")
    for statement in statements:
        _refused(statement)
    assert AuditEntry.objects.get().pk == kept.pk


@pytest.mark.django_db(transaction=True)
def test_a_sqlite_connection_outside_django_cannot_delete_either():
    """The SQLite DELETE trigger asks a function that only Django's own connections have, so the
    sqlite3 shell (or any other program) cannot delete entries; nor can it update them."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    import sqlite3

    record_action(actor=None, verb="shop.update", reason="kept")
    outside = sqlite3.connect(connection.settings_dict["NAME"], timeout=20)
    try:
        with pytest.raises(sqlite3.OperationalError, match="console_audit_flushing"):
            outside.execute("DELETE FROM console_auditentry")
        with pytest.raises(sqlite3.IntegrityError, match=REFUSED):
            outside.execute("UPDATE console_auditentry SET reason = 'rewritten'")
    finally:
        outside.rollback()
        outside.close()
    assert AuditEntry.objects.get().reason == "kept"
