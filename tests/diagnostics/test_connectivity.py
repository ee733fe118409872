"""Connectivity checks against real servers: up, refusing, silent, wrong password."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from doctor_support import API_TOKEN, PASSWORD, by_id, check, doctor, landing, rest_env
from support import execute

from runtime.embedded import SYSTEM_USER
from runtime.warehouse import parse_url

pytest_plugins = ["doctor_servers"]


@pytest.fixture
def env(loaded) -> dict[str, str]:
    """The environment of a warehouse holding one load of a small demo shop."""
    return loaded[2]


def test_warehouse_ok_names_version_latency_and_tls(env):
    result = check(env, "connectivity/warehouse")
    assert result.status == "OK", result.detail
    assert "PostgreSQL" in result.detail and "no TLS" in result.detail
    assert result.facts["latency_ms"] >= 0 and result.facts["tls"] is False


def test_a_slow_warehouse_warns_past_the_latency_threshold(env):
    result = check({**env, "DOCTOR__WAREHOUSE_LATENCY_WARN_MS": "-1"}, "connectivity/warehouse")
    assert result.status == "WARN" and result.hint.startswith("check the network")


def test_warehouse_stopped_fails_and_skips_the_data_checks_exit_1(env, closed_port):
    env = {**env, "ELT_WAREHOUSE_URL": f"postgresql://etl:wh-s3cret@127.0.0.1:{closed_port}/wh"}
    code, payload, stderr = doctor(env)
    assert code == 1
    checks = by_id(payload)
    warehouse = checks["connectivity/warehouse"]
    assert warehouse["status"] == "FAIL" and "Connection refused" in warehouse["detail"]
    assert "ELT_WAREHOUSE_URL" in warehouse["hint"]
    # every data check that reads the warehouse is skipped, naming what to fix first
    data = [c for c in payload["checks"] if c["section"] == "data"]
    reading = [c for c in data if not c["id"].endswith("/packages")]  # dlt's working dir
    assert {c["source"] for c in reading} >= {"shop", "payments"}
    assert all(c["status"] == "SKIP" for c in reading)
    assert all("elt doctor --only connectivity" in c["hint"] for c in reading)
    # the rest of the report is complete
    assert {c["section"] for c in payload["checks"]} == {"system", "config", "connectivity", "data"}
    assert "wh-s3cret" not in str(payload) + stderr


def test_warehouse_that_never_answers_fails_on_its_deadline(env, blackhole):
    env = {**env, "ELT_WAREHOUSE_URL": f"postgresql://etl@127.0.0.1:{blackhole}/wh"}
    code, payload, _ = doctor(env, "--timeout", "3")
    assert code == 1
    warehouse = by_id(payload)["connectivity/warehouse"]
    assert warehouse["status"] == "FAIL"
    assert "timeout" in warehouse["detail"] or "no answer" in warehouse["detail"]
    assert "accepts but does not answer" in warehouse["hint"]
    data = [c for c in payload["checks"] if c["section"] == "data"]
    reading = [c for c in data if not c["id"].endswith("/packages")]  # dlt's working dir
    assert reading and all(c["status"] == "SKIP" for c in reading), data


def test_wrong_warehouse_password_fails_naming_the_setting_not_the_password(password_server):
    url = password_server.replace("postgres@", "postgres:wrong-pw-77@")
    env = {"ELT_WAREHOUSE_URL": url}
    result = check(env, "connectivity/warehouse")
    assert result.status == "FAIL"
    assert "password authentication failed" in result.detail
    assert "password in ELT_WAREHOUSE_URL" in result.hint
    assert "wrong-pw-77" not in result.detail + result.hint


def test_right_warehouse_password_connects(password_server):
    url = password_server.replace("postgres@", f"postgres:{PASSWORD}@")
    result = check({"ELT_WAREHOUSE_URL": url}, "connectivity/warehouse")
    assert result.status == "OK", result.detail


def test_wrong_source_password_fails_naming_the_credentials_setting(env, password_server):
    url = password_server.replace("postgres@", "postgres:not-it-55@")
    result = check({**env, "SOURCES__SHOP__CREDENTIALS": url}, "connectivity/source/shop")
    assert result.status == "FAIL"
    assert "password authentication failed" in result.detail
    assert "SOURCES__SHOP__CREDENTIALS" in result.hint
    assert "not-it-55" not in result.detail + result.hint


def test_shop_source_ok_has_select_on_every_configured_table(env):
    result = check(env, "connectivity/source/shop")
    assert result.status == "OK", result.detail
    assert "SELECT on 4/4 tables" in result.detail


def test_shop_source_refusing_connections_fails_with_a_hint(env, closed_port):
    env = {
        **env,
        "SOURCES__SHOP__CREDENTIALS": f"postgresql://app:pw-x1@127.0.0.1:{closed_port}/s",
    }
    result = check(env, "connectivity/source/shop")
    assert result.status == "FAIL" and "Connection refused" in result.detail
    assert "SOURCES__SHOP__CREDENTIALS" in result.hint


def test_a_source_that_never_answers_costs_its_timeout_and_the_report_stays_complete(
    env, blackhole
):
    env = {**env, "SOURCES__SHOP__CREDENTIALS": f"postgresql://app@127.0.0.1:{blackhole}/s"}
    code, payload, _ = doctor(env, "--timeout", "3")
    assert code == 1
    checks = by_id(payload)
    assert checks["connectivity/source/shop"]["status"] == "FAIL"
    assert "accepts but does not answer" in checks["connectivity/source/shop"]["hint"]
    assert checks["connectivity/warehouse"]["status"] == "OK"
    # the data checks read the warehouse, not the source: they still ran
    assert checks["data/shop/variant_columns"]["status"] == "OK"
    assert not [c for c in payload["checks"] if c["status"] == "SKIP"]


def test_missing_select_privilege_fails_with_the_grant_to_run(env):
    shop_url = env["SOURCES__SHOP__CREDENTIALS"]
    role = f"doctor_reader_{uuid.uuid4().hex[:6]}"
    execute(shop_url, f"create role {role} login password 'reader-pw-1'")
    try:
        execute(shop_url, f"grant select on public.customers, public.products to {role}")
        url = dataclasses.replace(parse_url(shop_url), user=role, password="reader-pw-1").url
        result = check({**env, "SOURCES__SHOP__CREDENTIALS": url}, "connectivity/source/shop")
    finally:
        execute(shop_url, f"drop owned by {role}")
        execute(shop_url, f"drop role {role}")
    assert result.status == "FAIL"
    assert "no SELECT" in result.detail and "orders" in result.detail
    assert result.hint.startswith("GRANT SELECT ON public.orders, public.order_items TO ")


def test_a_configured_table_missing_in_the_source_fails(env):
    env = {**env, "SOURCES__SHOP__TABLES__SHIPMENTS__CURSOR": "updated_at"}
    result = check(env, "connectivity/source/shop")
    assert result.status == "FAIL" and "shipments" in result.detail
    assert "[sources.shop.tables]" in result.hint


# --- a REST source ------------------------------------------------------------------------


def api_url(api) -> str:
    return f"http://127.0.0.1:{api.server_address[1]}/api"


def test_rest_source_ok_reports_token_accepted_and_rate_limit_left(api):
    result = check(rest_env(api_url(api)), "connectivity/source/payments")
    assert result.status == "OK", result.detail
    assert "token accepted" in result.detail and "42/60 left" in result.detail
    assert result.facts["rate_limit_remaining"] == 42
    assert API_TOKEN not in result.detail


def test_rest_source_with_a_rejected_token_fails(api):
    result = check(rest_env(api_url(api), token="expired-token-1"), "connectivity/source/payments")
    assert result.status == "FAIL" and "token rejected (HTTP 401)" in result.detail
    assert "SOURCES__PAYMENTS__TOKEN" in result.hint
    assert "expired-token-1" not in result.detail + result.hint


def test_rest_source_rate_limited_warns_with_the_wait(api):
    api.mode = "limited"
    result = check(rest_env(api_url(api)), "connectivity/source/payments")
    assert result.status == "WARN" and "retry after 17s" in result.detail
    assert "elt load payments" in result.hint


def test_rest_source_nearly_out_of_requests_warns(api):
    api.mode = "low"
    result = check(rest_env(api_url(api)), "connectivity/source/payments")
    assert result.status == "WARN" and "2/60 left" in result.detail


def test_rest_source_server_error_fails(api):
    api.mode = "broken"
    result = check(rest_env(api_url(api)), "connectivity/source/payments")
    assert result.status == "FAIL" and "HTTP 503" in result.detail


def test_rest_source_probe_path_not_found_fails_naming_doctor_path(api):
    env = {**rest_env(api_url(api)), "SOURCES__PAYMENTS__DOCTOR_PATH": "health"}
    result = check(env, "connectivity/source/payments")
    assert result.status == "FAIL" and "HTTP 404 for the probe path health" in result.detail
    assert "doctor_path" in result.hint


def test_rest_source_refusing_connections_fails(closed_port):
    result = check(rest_env(f"http://127.0.0.1:{closed_port}/api"), "connectivity/source/payments")
    assert result.status == "FAIL" and "connection refused" in result.detail
    assert "SOURCES__PAYMENTS__BASE_URL" in result.hint


def test_rest_source_that_never_answers_fails(blackhole):
    result = check(rest_env(f"http://127.0.0.1:{blackhole}/api"), "connectivity/source/payments", 3)
    assert result.status == "FAIL"
    assert "no answer" in result.detail
    assert "accepts but does not answer" in result.hint


def test_rest_source_stopped_fails_only_its_check_exit_1(env, closed_port):
    """The issue's acceptance: the payments API down, the rest of the report complete."""
    env = {**env, **rest_env(f"http://127.0.0.1:{closed_port}/api")}
    code, payload, stderr = doctor(env)
    assert code == 1
    checks = by_id(payload)
    assert checks["connectivity/source/payments"]["status"] == "FAIL"
    assert checks["connectivity/source/payments"]["hint"]
    failed = [c["id"] for c in payload["checks"] if c["status"] == "FAIL"]
    assert failed == ["connectivity/source/payments"], failed
    assert "connectivity/source/payments" in stderr
    assert API_TOKEN not in str(payload) + stderr


# --- a files source -----------------------------------------------------------------------


def files_env(folder) -> dict[str, str]:
    return {"SOURCES__MARKETING__BUCKET_URL": str(folder), "SOURCES__MARKETING__FILE_GLOB": "*.csv"}


def test_files_source_reports_files_waiting_since_the_last_load(elt_env, warehouse, tmp_path):
    # its own warehouse: it creates raw_marketing. The files match the configured ad_spend
    # feed's glob (ad_spend/*.csv); notes.txt matches no feed and is not counted
    names = ["ad_spend/old.csv", "ad_spend/new_1.csv", "ad_spend/new_2.csv", "notes.txt"]
    folder = landing(tmp_path, names)
    an_hour_ago = time.time() - 3600
    os.utime(folder / "ad_spend" / "old.csv", (an_hour_ago - 600, an_hour_ago - 600))
    execute(
        warehouse.url,
        "create schema raw_marketing; create table raw_marketing._dlt_loads (load_id varchar,"
        " schema_name varchar, status bigint, inserted_at timestamptz,"
        " schema_version_hash varchar);"
        " insert into raw_marketing._dlt_loads values ('1', 'marketing', 0,"
        " now() - interval '1 hour', 'h')",
    )
    result = check({**elt_env, **files_env(folder)}, "connectivity/source/marketing")
    assert result.status == "OK", result.detail
    assert (result.facts["files"], result.facts["waiting"]) == (3, 2)


def test_files_source_counts_the_files_of_each_feed_glob(env, tmp_path):
    folder = landing(tmp_path, ["stray.txt"])
    (folder / "ad_spend").mkdir()
    for name in ("2026-11-01.csv", "2026-11-02.csv", ".partial.csv"):
        (folder / "ad_spend" / name).write_text("a\n")
    feeds = {
        "SOURCES__MARKETING__BUCKET_URL": f"file://{folder}",
        "SOURCES__MARKETING__FEEDS__AD_SPEND__FILE_GLOB": "ad_spend/*.csv",
    }
    result = check({**env, **feeds}, "connectivity/source/marketing")
    assert result.status == "OK" and result.facts["files"] == 2


def test_files_source_with_a_missing_landing_folder_fails(env, tmp_path):
    result = check({**env, **files_env(tmp_path / "nope")}, "connectivity/source/marketing")
    assert result.status == "FAIL" and "does not exist" in result.detail
    assert result.hint.startswith(f"`mkdir -p {tmp_path / 'nope'}`")


def test_files_source_with_an_unreadable_landing_folder_fails(env, tmp_path_factory):
    """Root reads any folder, so as root the check runs in a forked child that has dropped
    to the unprivileged user the embedded server runs as, on a folder that user can reach."""
    base = Path(tempfile.mkdtemp(prefix="elt-unreadable-"))
    base.chmod(0o755)
    folder = landing(base, ["a.csv"])
    folder.chmod(0o000)
    try:
        status, detail = _as_unprivileged_user(
            lambda: check({**env, **files_env(folder)}, "connectivity/source/marketing")
        )
    finally:
        folder.chmod(0o755)
    assert status == "FAIL" and "not readable" in detail, detail


def _as_unprivileged_user(run) -> tuple[str, str]:
    """(status, detail) of `run()`, in a child without root's rights when we are root."""
    if os.geteuid() != 0:
        result = run()
        return str(result.status), result.detail
    entry = pwd.getpwnam(SYSTEM_USER)
    run()  # as root first: every module the check imports lazily is loaded before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root for good, check, report through the pipe
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            result = run()
            os.write(write_end, json.dumps([str(result.status), result.detail]).encode())
        except BaseException as exc:  # reported, so the parent fails with the cause
            os.write(write_end, json.dumps(["ERROR", f"{type(exc).__name__}: {exc}"]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        payload = reader.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(payload))
