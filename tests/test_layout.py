"""The tree reads like the flow: the simulator stands alone, and the README's layout table is true."""

import ast
import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SIMULATOR = BASE_DIR / "integrations" / "simulator"
FORBIDDEN_ROOTS = {"django", "django_q", "django_htmx", "environ", "console", "incidents", "integrations", "psycopg"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("integrations.simulator")  # a relative import stays inside the package
    return names


def test_simulator_imports_nothing_of_django_or_the_console():
    offenders = {}
    for path in sorted(SIMULATOR.rglob("*.py")):
        bad = {
            name
            for name in imported_modules(path)
            if name.split(".")[0] in FORBIDDEN_ROOTS and not name.startswith("integrations.simulator")
        }
        if bad:
            offenders[str(path.relative_to(BASE_DIR))] = sorted(bad)
    assert offenders == {}


def test_simulator_runs_without_django_installed_in_the_process():
    """Importing the whole simulator in a fresh interpreter loads no Django module at all."""
    code = (
        "import sys, pkgutil, importlib, integrations.simulator as s\n"
        "[importlib.import_module(f'integrations.simulator.{m.name}') for m in pkgutil.iter_modules(s.__path__)]\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'console', 'incidents'}"
        " or (m.startswith('integrations.') and not m.startswith('integrations.simulator')))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def layout_table() -> dict[str, str]:
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)`[^|]*\| (.+) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_readme_layout_table_matches_the_tree():
    table = layout_table()
    assert table, "the README has a Layout table"
    missing = [path for path in table if not (BASE_DIR / path).exists()]
    assert missing == []
    # Every stage subpackage of integrations (and the worksheets package) has its own row.
    packages = {
        f"{p.parent.relative_to(BASE_DIR)}/"
        for root in ("integrations", "incidents")
        for p in (BASE_DIR / root).glob("*/__init__.py")
        if p.parent.name not in {"migrations", "management"}
    }
    assert packages - set(table) == set()


def test_every_stage_package_says_what_it_owns():
    for package in ("inbound", "processing", "jobs", "eventlog", "shops", "outbound", "replay"):
        init = BASE_DIR / "integrations" / package / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"integrations/{package}/__init__.py needs a docstring"
