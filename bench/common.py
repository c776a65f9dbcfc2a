"""Shared by the benchmark scripts: a scratch PostgreSQL database and the environment for it."""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://console:console@127.0.0.1:5432/console"


def scratch_database(suffix: str) -> str:
    """Drop and create `<DATABASE_URL's name>_<suffix>`; return its URL."""
    parts = urlsplit(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    name = f"{parts.path.lstrip('/')}_{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "ERROR",
        "PYTHONPATH": str(ROOT),
    }
