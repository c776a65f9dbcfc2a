"""The real `manage.py shopify_simulator` process: starts, answers GraphQL, stops on SIGTERM."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.simulator.helpers import free_port, wait_until

BASE_DIR = Path(__file__).resolve().parents[2]


def _up(url):
    try:
        return requests.get(f"{url}/_simulator/health", timeout=1).ok
    except requests.ConnectionError:
        return False


def test_simulator_process_serves_graphql_and_stops_on_sigterm():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.test_settings"}
    command = [
        sys.executable,
        str(BASE_DIR / "manage.py"),
        "shopify_simulator",
        "--port",
        str(port),
        "--shop",
        "proc-test.myshopify.com",
        "--token",
        "shpat_proc",
        "--webhook-secret",
        "proc-secret",
        "--records",
        "50",
        "--seed",
        "3",
        "--scopes",
        "read_products,read_orders",
    ]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _up(url) or process.poll() is not None, timeout=30)
        assert process.poll() is None, process.stdout.read()
        response = requests.post(
            f"{url}/proc-test.myshopify.com/admin/api/2026-10/graphql.json",
            json={"query": "{ productsCount { count } currentAppInstallation { accessScopes { handle } } }"},
            headers={"X-Shopify-Access-Token": "shpat_proc"},
            timeout=5,
        )
        assert response.status_code == 200
        assert response.headers["X-Shopify-API-Version"] == "2026-10"
        data = response.json()["data"]
        assert data["productsCount"]["count"] == 15
        assert data["currentAppInstallation"]["accessScopes"] == [
            {"handle": "read_products"},
            {"handle": "read_orders"},
        ]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert f"listening on http://127.0.0.1:{port}/" in output
    assert "Shopify simulator stopped." in output
