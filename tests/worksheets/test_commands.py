"""`manage.py worksheets ...`: the flags, exit statuses and --json keys scripts rely on, against the
simulator; maker-checker refusals exactly as in the browser; and real processes (the command in a
child process, and `--wait` following a real qcluster worker)."""

import json
import subprocess
import sys
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from incidents.worksheets.models import Worksheet
from integrations.models import OutboundCall, PlatformProduct
from tests.processes import BASE_DIR, child_env, running, wait_for
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = pytest.mark.django_db(transaction=True)

WORKSHEET_KEYS = {"id", "state", "shop", "resource", "prepared_by", "approved_by", "plan_hash", "rows"}
ROW_KEYS = {"key", "kind", "proposal", "reason", "fields", "result"}
FIELD_KEYS = {"name", "shopify", "platform", "owner"}


def ws(*args, stdin=None) -> tuple[dict, str]:
    """Run `worksheets ARGS --json`; return its JSON and what it wrote on stderr."""
    out, err = StringIO(), StringIO()
    extra = {"stdin": stdin} if stdin is not None else {}
    call_command("worksheets", *map(str, args), "--json", stdout=out, stderr=err, **extra)
    return json.loads(out.getvalue()), err.getvalue()


def refused(*args, match: str) -> dict:
    """Run `worksheets ARGS --json` expecting a refusal; return its {"error": ...}."""
    out = StringIO()
    with pytest.raises(CommandError, match=match) as refusal:
        call_command("worksheets", *map(str, args), "--json", stdout=out, stderr=StringIO())
    assert refusal.value.returncode == 1
    data = json.loads(out.getvalue())
    assert data == {"error": str(refusal.value)}
    return data


@pytest.fixture
def products(store):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    return shop, sim, list(PlatformProduct.objects.filter(shop=shop).order_by("shopify_id"))


@pytest.fixture
def ids_file(tmp_path):
    def write(*products) -> str:
        # Numeric ids and gids, one per line or comma-separated, as a person would paste them.
        first, *rest = products
        lines = [str(first.shopify_id)] + [f"gid://shopify/Product/{p.shopify_id}" for p in rest[:1]]
        lines += [", ".join(str(p.shopify_id) for p in rest[1:])] if rest[1:] else []
        path = tmp_path / "ids.txt"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    return write


def created(shop, user, path, *extra) -> dict:
    data, _ = ws("create", "--shop", shop.domain, "--resource", "products", "--ids", path, "--user", user.username,
                 *extra)  # fmt: skip
    return data


def test_create_from_an_ids_file_compare_wait_and_show_the_json_scripts_read(products, ids_file, admin_user):
    shop, _sim, (a, b, c, d, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")  # the platform owns titles
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")  # Shopify owns vendors
    data = created(shop, admin_user, ids_file(a, b, c, d), "--fields", "title,vendor", "--title", "after the outage")
    assert (
        data["state"] == "draft"
        and data["prepared_by"] == admin_user.username
        and data["fields"] == ["title", "vendor"]
    )
    assert [row["key"] for row in data["rows"]] == [f"gid://shopify/Product/{p.shopify_id}" for p in (a, b, c, d)]
    assert {row["kind"] for row in data["rows"]} == {"pending"}

    compared, progress = ws("compare", data["id"], "--wait")
    assert compared["id"] == data["id"] and compared["state"] == "compared"
    assert f"worksheet {data['id']}: compare 4/4 (100%)" in progress

    shown, _ = ws("show", data["id"])
    assert set(shown) >= WORKSHEET_KEYS and shown["shop"] == shop.domain and shown["resource"] == "products"
    assert shown["approved_by"] is None and len(shown["plan_hash"]) == 64
    for row in shown["rows"]:
        assert set(row) >= ROW_KEYS and row["result"] is None
        assert [f["name"] for f in row["fields"]] == ["title", "vendor"]
        assert all(set(f) >= FIELD_KEYS for f in row["fields"])
    rows = {row["key"].rsplit("/", 1)[1]: row for row in shown["rows"]}
    assert rows[str(a.shopify_id)]["proposal"] == "write_shopify"
    title = next(f for f in rows[str(a.shopify_id)]["fields"] if f["name"] == "title")
    assert (title["shopify"], title["platform"], title["owner"]) == (a.title, "Platform title", "platform")
    assert rows[str(b.shopify_id)]["proposal"] == "write_platform"
    assert rows[str(c.shopify_id)]["proposal"] == rows[str(d.shopify_id)]["proposal"] == "no_change"
    assert shown["blast_radius"]["rows_write_shopify"] == 1 and shown["blast_radius"]["rows_write_platform"] == 1

    few, _ = ws("show", data["id"], "--rows", "1")
    assert len(few["rows"]) == 1 and few["rows_total"] == 4

    out = StringIO()
    call_command("worksheets", "show", str(data["id"]), stdout=out)
    text = out.getvalue()
    assert f"Worksheet {data['id']} (Compared (in review)): 4 products of {shop.domain}" in text
    assert "Kinds: 2 differs, 2 same\nProposals: 2 no change, 1 write platform, 1 write shopify" in text
    assert "Blast radius: rows to write: 1 in Shopify (title x1), 1 in the platform (vendor x1); 1 shop(s)" in text
    assert f"gid://shopify/Product/{a.shopify_id} {a.title!r}  differs  write_shopify: The platform owns title" in text
    assert f"worksheets submit {data['id']} --user U" in text

    listed, _ = ws("list", "--shop", shop.domain, "--state", "compared")
    assert [w["id"] for w in listed] == [data["id"]] and "rows" not in listed[0]
    assert ws("list", "--state", "applied")[0] == []


def test_ids_can_come_from_stdin_and_bad_lists_are_refused(products, admin_user, tmp_path):
    shop, _sim, (a, b, *_rest) = products
    data, _ = ws("create", "--shop", shop.domain, "--resource", "products", "--ids", "-", "--user", admin_user.username,
                 stdin=StringIO(f"{a.shopify_id},{b.shopify_id}\n"))  # fmt: skip
    assert len(data["rows"]) == 2 and data["fields"] == Worksheet.objects.get(pk=data["id"]).fields
    out = StringIO()
    call_command("worksheets", "create", "--shop", shop.domain, "--resource", "products", "--ids", "-", "--user",
                 admin_user.username, stdin=StringIO(f"{a.shopify_id}\n"), stdout=out)  # fmt: skip
    assert f"Next: manage.py worksheets compare {data['id'] + 1} --wait" in out.getvalue()
    out = StringIO()
    call_command("worksheets", "list", stdout=out)
    assert out.getvalue().splitlines()[0].startswith(f"{data['id'] + 1}\tdraft\t")
    base = ["create", "--shop", shop.domain, "--user", admin_user.username]
    (tmp_path / "bad.txt").write_text("12\nnot-an-id\n")
    refused(*base, "--resource", "products", "--ids", tmp_path / "bad.txt", match="could not be read")
    refused(*base, "--resource", "products", "--ids", tmp_path / "missing.txt", match="Cannot read the ids file")
    refused(*base, "--resource", "planets", "--ids", tmp_path / "bad.txt", match="resource must be one of")
    (tmp_path / "ok.txt").write_text(f"{a.shopify_id}\n")
    refused(
        *base, "--resource", "products", "--ids", tmp_path / "ok.txt", "--fields", "colour", match="no field colour"
    )
    refused(*base, "--resource", "products", match="exactly one list")
    refused(*base, "--resource", "products", "--ids", tmp_path / "ok.txt", "--incident", "1", match="exactly one list")
    refused(*base, "--resource", "products", "--incident", "999999", match="No incident 999999")
    refused("create", "--shop", "nope.myshopify.com", "--resource", "products", "--ids", tmp_path / "ok.txt",
            "--user", admin_user.username, match="No shop nope")  # fmt: skip
    refused("create", "--shop", shop.domain, "--resource", "products", "--ids", tmp_path / "ok.txt", "--user", "ghost",
            match="No active user 'ghost'")  # fmt: skip
    refused("create", "--shop", shop.domain, "--resource", "products", "--ids", tmp_path / "ok.txt",
            match="Say who prepares it with --user")  # fmt: skip
    assert Worksheet.objects.count() == 2
    refused("show", "999999", match="No worksheet 999999")


def test_maker_checker_refusals_exit_non_zero_and_change_nothing(products, ids_file, admin_user, approver_user,
                                                                  support_user):  # fmt: skip
    shop, _sim, (a, b, *_rest) = products
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")
    data = created(shop, admin_user, ids_file(a, b))
    ws("compare", data["id"], "--wait")
    refused("apply", data["id"], "--user", approver_user.username, match="Only an approved worksheet can be applied")
    submitted, _ = ws("submit", data["id"], "--user", admin_user.username)
    assert submitted["state"] == "submitted"

    refused("approve", data["id"], "--user", admin_user.username, match="preparer cannot approve")
    refused("approve", data["id"], "--user", support_user.username, match="may not approve worksheets")
    refused("approve", data["id"], match="Say who approves it with --user")
    refused("reject", data["id"], "--user", approver_user.username, match="Say why it is rejected")
    refused("reject", data["id"], "--user", admin_user.username, "--comment", "mine", match="preparer cannot review")
    refused("apply", data["id"], "--user", approver_user.username, match="Only an approved worksheet can be applied")
    refused("approve", data["id"], "--user", approver_user.username, "--plan-hash", "0" * 64, match="plan changed")
    worksheet = Worksheet.objects.get(pk=data["id"])
    assert worksheet.state == Worksheet.State.SUBMITTED and worksheet.approved_by is None
    assert PlatformProduct.objects.get(pk=b.pk).vendor == "Stale vendor"
    assert not worksheet.steps.filter(target__in=["approved", "rejected", "applying"]).exists()

    rejected, _ = ws("reject", data["id"], "--user", approver_user.username, "--comment", "check the PIM first")
    assert rejected["state"] == "rejected" and rejected["review_comment"] == "check the PIM first"


def test_the_whole_path_writes_the_platform_and_rollback_makes_a_new_worksheet(products, ids_file, admin_user,
                                                                                approver_user, tmp_path):  # fmt: skip
    shop, _sim, (a, b, c, *_rest) = products
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")  # Shopify owns vendors: no sender needed
    data = created(shop, admin_user, ids_file(a, b, c), "--fields", "vendor")
    ws("compare", data["id"], "--wait")
    ws("submit", data["id"], "--user", admin_user.username)
    approved, _ = ws("approve", data["id"], "--user", approver_user.username, "--comment", "checked")
    assert approved["approved_by"] == approver_user.username and approved["approved_hash"] == approved["plan_hash"]

    applied, progress = ws("apply", data["id"], "--wait", "--user", admin_user.username)
    assert applied["state"] == "applied" and "apply 3/3 (100%)" in progress
    assert PlatformProduct.objects.get(pk=b.pk).vendor == b.vendor
    results = {row["key"].rsplit("/", 1)[1]: row["result"] for row in applied["rows"]}
    assert results == {str(a.shopify_id): "skipped", str(b.shopify_id): "applied", str(c.shopify_id): "skipped"}
    written = next(row for row in applied["rows"] if row["result"] == "applied")
    assert written["before"] == {"vendor": "Stale vendor"} and written["after"] == {"vendor": b.vendor}

    exported, _ = ws("export", data["id"], "--output", tmp_path / "ws.csv")
    with open(tmp_path / "ws.csv", newline="") as exported_file:
        csv_text = exported_file.read()
    assert exported["lines"] == 3 and csv_text.startswith("worksheet,state,key,")
    assert f"{data['id']},applied,gid://shopify/Product/{b.shopify_id}" in csv_text
    out = StringIO()
    call_command("worksheets", "export", str(data["id"]), stdout=out)
    assert out.getvalue() == csv_text

    back, _ = ws("rollback", data["id"], "--user", admin_user.username)
    assert back["id"] != data["id"] and back["rollback_of"] == data["id"] and back["state"] == "compared"
    assert [row["key"] for row in back["rows"]] == [written["key"]]
    refused("rollback", data["id"], "--user", "ghost", match="No active user")
    ws("submit", back["id"], "--user", admin_user.username)
    refused("approve", back["id"], "--user", admin_user.username, match="preparer cannot approve")
    ws("approve", back["id"], "--user", approver_user.username)
    undone, _ = ws("apply", back["id"], "--wait", "--user", admin_user.username)
    assert undone["state"] == "applied"
    assert PlatformProduct.objects.get(pk=b.pk).vendor == "Stale vendor"


def test_apply_wait_settles_rows_written_through_the_outbound_queue(products, ids_file, admin_user, approver_user):
    shop, sim, (a, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")  # written to Shopify
    data = created(shop, admin_user, ids_file(a), "--fields", "title")
    ws("compare", data["id"], "--wait")
    ws("submit", data["id"], "--user", admin_user.username)
    ws("approve", data["id"], "--user", approver_user.username)

    def sender():  # the qcluster's outbound sender, here a thread
        try:
            wait_for(lambda: OutboundCall.objects.filter(origin=OutboundCall.Origin.WORKSHEET).exists(), timeout=30)
            send_outbound()
        finally:
            connection.close()

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    applied, _ = ws("apply", data["id"], "--wait", "--timeout", "60", "--user", admin_user.username)
    thread.join(timeout=30)
    assert applied["state"] == "applied" and applied["rows"][0]["result"] == "applied"
    assert sim.record("products", a.shopify_id)["title"] == "Platform title"


def test_wait_gives_up_after_the_timeout_with_exit_status_4(products, ids_file, admin_user, approver_user):
    shop, _sim, (a, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    data = created(shop, admin_user, ids_file(a), "--fields", "title")
    ws("compare", data["id"], "--wait")
    ws("submit", data["id"], "--user", admin_user.username)
    ws("approve", data["id"], "--user", approver_user.username)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_status:  # no sender runs: its call stays queued
        call_command("worksheets", "apply", str(data["id"]), "--wait", "--timeout", "0", "--user",
                     admin_user.username, "--json", stdout=out, stderr=err)  # fmt: skip
    assert exit_status.value.code == 4
    assert json.loads(out.getvalue())["state"] == "applying" and "still running" in err.getvalue()


def manage(*args, stdin: str | None = None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "worksheets", *map(str, args)],
        input=stdin, env=env or child_env(), cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_as_a_real_process_refusals_exit_1_with_the_reason(products, admin_user):
    shop, _sim, (a, b, *_rest) = products
    made = manage("create", "--shop", shop.domain, "--resource", "products", "--ids", "-", "--user",
                  admin_user.username, "--json", stdin=f"{a.shopify_id}\n{b.shopify_id}\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    worksheet_id = json.loads(made.stdout)["id"]
    assert Worksheet.objects.get(pk=worksheet_id).rows.count() == 2

    no_compare = manage("submit", worksheet_id, "--user", admin_user.username, "--json")
    assert no_compare.returncode == 1
    assert "Only a compared worksheet can be submitted" in no_compare.stderr
    assert json.loads(no_compare.stdout) == {"error": "Only a compared worksheet can be submitted; this one is draft."}
    Worksheet.objects.filter(pk=worksheet_id).update(state=Worksheet.State.SUBMITTED)
    own = manage("approve", worksheet_id, "--user", admin_user.username)
    assert own.returncode == 1 and "preparer cannot approve" in own.stderr and own.stdout == ""
    assert Worksheet.objects.get(pk=worksheet_id).state == Worksheet.State.SUBMITTED


def test_compare_wait_follows_a_real_worker(products, ids_file, admin_user):
    shop, _sim, (a, b, *_rest) = products
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")
    data = created(shop, admin_user, ids_file(a, b))
    with running(["qcluster"]):
        done = manage("compare", data["id"], "--wait", "--timeout", "90", "--user", admin_user.username, "--json")
    assert done.returncode == 0, done.stderr
    compared = json.loads(done.stdout)
    assert compared["state"] == "compared" and compared["progress"]["step"] == ""
    assert {row["proposal"] for row in compared["rows"]} == {"no_change", "write_platform"}
    assert f"worksheet {data['id']}: compare 2/2 (100%)" in done.stderr
