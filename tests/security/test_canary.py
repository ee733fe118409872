"""No secret and no row value in any output: canary secrets and a canary row value
through every command and failure mode, looked for in raw, URL-encoded, JSON-escaped and
base64 form on stdout, stderr, elt's home, dlt's working dir, dbt's target and logs, the
doctor's bundle and the audit tables."""

from __future__ import annotations

import base64
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from doctor_support import rest_env
from support import query, run_elt

from runtime import embedded
from runtime.project import project_dir
from runtime.secrets import redact

PROJECT = project_dir()
SHOP_PASSWORD = "c4n@ry/pw#9f3e:x"  # needs URL-encoding: its fragments must not leak either
WAREHOUSE_PASSWORD = "wh-c4nary-77a1"
TOKEN = "tok-c4nary-5d1e9a7c"
ROW_VALUE = "c4nary.row.8b2f@example.com"
CANARIES = (SHOP_PASSWORD, WAREHOUSE_PASSWORD, TOKEN, ROW_VALUE)


def forms(value: str) -> set[str]:
    return {
        value,
        quote(value, safe=""),
        json.dumps(value)[1:-1],
        base64.b64encode(value.encode()).decode().rstrip("="),
    }


def hits(text: str) -> list[str]:
    return [f"{c} as {form!r}" for c in CANARIES for form in forms(c) if form in text]


class Echo(BaseHTTPRequestHandler):
    """A payments API gone wrong in the way `mode` says, echoing the request's headers
    (the token) and a row value in every body."""

    mode = "echo"

    def do_GET(self) -> None:
        headers = dict(self.headers.items())
        row = {"payment_id": 1, "email": ROW_VALUE, "updated_at": "2024-01-01T00:00:00+00:00"}
        status, kind = 200, "application/json"
        if self.mode == "401":
            status, body = 401, json.dumps({"error": "bad token", "headers": headers})
        elif self.mode == "500":
            status, body = 500, json.dumps({"error": "boom", "headers": headers, "row": row})
        elif self.mode == "badjson":
            body = '{"data": [' + json.dumps(row) + ", " + json.dumps(headers)
        elif self.mode == "html":
            kind, body = "text/html", f"<html>{headers} {ROW_VALUE}</html>"
        else:  # a page without has_more, quoting the request back
            body = json.dumps({"data": [row], "next_cursor": None, "echo": headers})
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Echo,), {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    return embedded._free_port()


def scan_files(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink() and ".venv" not in path.parts:
                text = path.read_bytes().decode("utf-8", "replace")
                if path.name.endswith((".tar.gz", ".tgz")):
                    with tarfile.open(path) as archive:
                        text = "".join(
                            archive.extractfile(m).read().decode("utf-8", "replace")
                            for m in archive.getmembers()
                            if m.isfile()
                        )
                found += [f"{path}: {hit}" for hit in hits(text)]
    return found


def audit_text(warehouse) -> str:
    rows = query(
        warehouse,
        "select coalesce(json_agg(r)::text, '') from elt_audit.runs r"
        " where exists (select from information_schema.tables"
        " where table_schema = 'elt_audit' and table_name = 'runs')",
    )
    return rows[0][0] if rows else ""


SHOP_MODES = {
    "down": lambda w: (
        f"host=127.0.0.1 port={closed_port()} user=shop password='{SHOP_PASSWORD}' dbname=shop"
    ),
    "wrong password (keyword DSN)": lambda w: (
        f"host={w.host} port={w.port} user=postgres password='{SHOP_PASSWORD}' dbname=postgres"
    ),
    "wrong password (un-encoded URL)": lambda w: (
        f"postgresql://postgres:{SHOP_PASSWORD}@{w.host}:{w.port}/postgres"
    ),
}
# what the one-line error says instead of the body
PAYMENT_MODES = {
    "401": "answered HTTP 401",
    "500": "answered HTTP 500",
    "echo": "missing key has_more in a JSON object of 3 keys",
    "badjson": "payments",
    "html": "not JSON",
}


def sweep(result, warehouse, tmp_path: Path) -> list[str]:
    found = [f"stdout: {h}" for h in hits(result.stdout)]
    found += [f"stderr: {h}" for h in hits(result.stderr)]
    found += scan_files(
        tmp_path,
        embedded.home(PROJECT),
        PROJECT / "dbt" / "target",
        PROJECT / "dbt" / "logs",
    )
    found += [f"audit: {h}" for h in hits(audit_text(warehouse))]
    return found


@pytest.mark.parametrize("mode", list(SHOP_MODES))
def test_shop_failures_leak_no_password(elt_env, warehouse, tmp_path, mode):
    env = {**elt_env, "SOURCES__SHOP__CREDENTIALS": SHOP_MODES[mode](warehouse)}
    result = run_elt("--debug", "load", "shop", env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    bundle = tmp_path / "bundle.tar.gz"
    doctor = run_elt("doctor", "--format", "json", "--bundle", str(bundle), env=env)
    assert bundle.exists(), doctor.stderr
    runs = run_elt("runs", "--format", "json", env=env)
    for step in (result, doctor, runs):
        assert sweep(step, warehouse, tmp_path) == []


@pytest.mark.parametrize("mode", list(PAYMENT_MODES))
def test_payments_failures_leak_no_token_and_no_row_value(elt_env, warehouse, api, tmp_path, mode):
    api.RequestHandlerClass.mode = mode
    env = {
        **elt_env,
        **rest_env(f"http://127.0.0.1:{api.server_address[1]}", token=TOKEN),
        "SOURCES__PAYMENTS__REQUEST_MAX_ATTEMPTS": "1",
    }
    result = run_elt("--debug", "load", "payments", env=env, timeout=300)
    assert result.returncode != 0
    assert PAYMENT_MODES[mode] in result.stderr.strip().splitlines()[-1], result.stderr[-3000:]
    runs = run_elt("runs", "--format", "json", env=env)
    for step in (result, runs):
        assert sweep(step, warehouse, tmp_path) == []


def test_a_wrong_warehouse_password_leaks_nowhere(elt_env, warehouse, tmp_path):
    url = f"postgresql://postgres:{WAREHOUSE_PASSWORD}@{warehouse.host}:{warehouse.port}/x"
    for args in (("--debug", "sql", "select 1"), ("--debug", "load", "shop"), ("doctor",)):
        result = run_elt(*args, env={**elt_env, "ELT_WAREHOUSE_URL": url})
        assert result.returncode in (1, 2)  # the doctor: a failed check (1); others: 2
        assert hits(result.stdout + result.stderr) == []


@pytest.mark.parametrize(
    "text",
    [
        f"connection to host=db port=5432 password={SHOP_PASSWORD} failed",
        f"dsn: host=db password='{SHOP_PASSWORD}' user=x",
        f"postgresql://u:{SHOP_PASSWORD}@db:5432/shop",
        f"echo: {{'Authorization': 'Bearer {TOKEN}'}}",
        f'"authorization": "Bearer {TOKEN}"',
    ],
)
def test_redact_masks_credentials_it_was_never_told_about(text):
    assert hits(redact(text)) == []


def test_redact_masks_known_secrets_in_every_form(monkeypatch):
    monkeypatch.setenv("SOURCES__PAYMENTS__TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", f"postgresql://u:{SHOP_PASSWORD}@h/d")
    for canary in (TOKEN, SHOP_PASSWORD):
        for form in forms(canary):
            assert hits(redact(f"xx {form} yy")) == [], form


def test_redact_masks_alert_webhook_urls_from_the_environment(monkeypatch):
    """A Slack-style webhook URL carries its token in the path: every URL of the list is
    a secret, wherever it is echoed (a delivery error, the doctor bundle, a log)."""
    hooks = [f"https://hooks.example.test/services/T0/B0/{TOKEN}", "http://127.0.0.1:9/hook-x1"]
    monkeypatch.setenv("ELT_ALERTS__WEBHOOK_URLS", ", ".join(hooks))
    for hook in hooks:
        text = redact(f"alerts: POST {hook} failed: timed out")
        assert hook not in text and TOKEN not in text
        assert "alerts: POST" in text and "failed: timed out" in text
