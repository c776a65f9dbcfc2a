"""Every `python manage.py` command the README shows works as written in a checkout where `make run`
wrote its development .env: no SECRET_KEY or DEBUG in the environment, only that file."""

import re
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.processes import BASE_DIR, child_env

README = (BASE_DIR / "README.md").read_text()
# Run for real: they only read, and need nothing but the database.
READ_ONLY = {("shops", "list"), ("events", "pumps"), ("privacy", "list")}


def readme_commands() -> list[list[str]]:
    """`python manage.py WORD [SUBWORD]` from the README's shell blocks (placeholders dropped)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            match = re.match(r"\s*python manage\.py ([a-z_]+)(?: ([a-z][a-z-]*))?", line)
            if match:
                words = [w for w in match.groups() if w]
                if words not in commands:
                    commands.append(words)
    return commands


def test_the_readme_shows_commands():
    assert ["shops", "add"] in readme_commands() and ["events", "trace"] in readme_commands()


@pytest.mark.django_db(transaction=True)
def test_readme_commands_work_with_only_the_development_env_file(tmp_path, settings):
    settings.DEBUG = True
    env_file = tmp_path / ".env"
    call_command("dev_env", path=str(env_file))
    text = env_file.read_text()
    assert "DEBUG=true" in text and re.search(r"^SECRET_KEY=\S{40,}$", text, re.M)
    call_command("dev_env", path=str(env_file))  # never overwrites
    assert env_file.read_text() == text

    env = child_env(ENV_FILE=str(env_file))
    for name in ("SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    failures = []
    for words in readme_commands():
        argv = [sys.executable, str(BASE_DIR / "manage.py"), *words]
        run = argv if tuple(words) in READ_ONLY else [*argv, "--help"]
        result = subprocess.run(run, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            failures.append(f"{' '.join(words)}: {result.stderr.strip()[-300:]}")
    assert failures == []


def test_dev_env_refuses_outside_debug(tmp_path, settings):
    from django.core.management import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="development only"):
        call_command("dev_env", path=str(tmp_path / ".env"))
    assert not (tmp_path / ".env").exists()
