"""`elt doctor` as on-call and CI run it: JSON shape, exit codes, narrowing, rendering and
the incident bundle, which must hold no secret."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import zipfile

import pytest
from doctor_support import API_TOKEN, AUDIT_DDL, by_id, copy_project, doctor, rest_env
from support import execute, run_elt

from runtime.warehouse import parse_url

pytest_plugins = ["doctor_servers"]

CHECK_KEYS = {"id", "section", "name", "source", "status", "detail", "hint", "seconds", "facts"}


def test_json_has_the_documented_shape_and_a_healthy_load_exits_0(loaded):
    code, payload, _ = doctor(loaded[2])
    assert code == 0
    assert set(payload) == {
        "command", "version", "elt_version", "status", "exit_code", "worst", "strict",
        "seconds", "counts", "checks", "error",
    }  # fmt: skip
    assert (payload["command"], payload["version"], payload["status"]) == ("doctor", 1, "success")
    assert payload["counts"]["FAIL"] == 0
    assert sum(payload["counts"].values()) == len(payload["checks"])
    sections = [c["section"] for c in payload["checks"]]
    assert sections == sorted(sections, key=["system", "config", "connectivity", "data"].index)
    for item in payload["checks"]:
        assert set(item) == CHECK_KEYS
        assert item["status"] in ("OK", "WARN", "FAIL", "SKIP")
        if item["status"] != "OK":
            assert item["hint"], item  # every problem names the next step


def test_strict_makes_a_warning_exit_1(loaded):
    code, payload, stderr = doctor(loaded[2], "--strict")
    assert by_id(payload)["data/transform"]["status"] == "WARN"  # loaded, never transformed
    assert code == 1 and payload["strict"] is True
    assert "WARN" in stderr.splitlines()[-1]


def test_only_narrows_to_the_sections_named(loaded):
    _, payload, _ = doctor(loaded[2], "--only", "system", "--only", "connectivity")
    assert {c["section"] for c in payload["checks"]} == {"system", "connectivity"}


def test_source_narrows_to_that_sources_checks(loaded, api):
    env = {**loaded[2], **rest_env(f"http://127.0.0.1:{api.server_address[1]}/api")}
    _, payload, _ = doctor(env, "--source", "payments")
    assert {c["source"] for c in payload["checks"]} == {"payments"}
    data = {"last_load", "packages", "incomplete_loads", "cursor_state", "variant_columns"}
    data |= {"quarantine", "row_counts", "freshness"}
    assert set(by_id(payload)) == {
        "config/source/payments",
        "connectivity/source/payments",
        *(f"data/payments/{name}" for name in data),
    }


def test_an_unknown_source_is_a_usage_error_exit_2(loaded):
    result = run_elt("doctor", "--source", "nope", env=loaded[2])
    assert result.returncode == 2 and "unknown source nope" in result.stderr


def test_the_human_report_is_a_table_per_section_with_a_summary(loaded):
    result = run_elt("doctor", env=loaded[2])
    assert result.returncode == 0, result.stderr
    for title in ("system", "config", "connectivity", "data"):
        assert f"\n{title}\n" in f"\n{result.stdout}"
    assert "next" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("doctor: ")


def test_a_malformed_warehouse_url_is_a_configuration_failure_exit_2():
    result = run_elt("doctor", "--only", "config", env={"ELT_WAREHOUSE_URL": "mysql://db/x"})
    assert result.returncode == 2
    assert "config/warehouse" in result.stderr and "postgresql://" in result.stderr


def test_the_embedded_warehouse_not_running_fails_with_the_command_that_starts_it(tmp_path, api):
    # no .elt/ (and not the suite's ELT_HOME): nothing running there
    env = {"ELT_PROJECT_DIR": str(copy_project(tmp_path)), "ELT_HOME": ""}
    env |= rest_env(f"http://127.0.0.1:{api.server_address[1]}/api")  # payments answers
    code, payload, _ = doctor(env, "--only", "connectivity", "--only", "config")
    checks = by_id(payload)
    assert code == 1
    assert checks["config/warehouse"]["status"] == "OK"
    assert checks["connectivity/warehouse"]["status"] == "FAIL"
    assert "not running" in checks["connectivity/warehouse"]["detail"]
    assert 'elt sql "select 1"' in checks["connectivity/warehouse"]["hint"]
    # the demo shop database lives on that server: not checked, not reported twice
    assert checks["connectivity/source/shop"]["status"] == "SKIP"
    assert checks["connectivity/source/payments"]["status"] == "OK"


def test_help_lists_doctor_with_examples():
    assert "doctor" in run_elt("--help", env={}).stdout
    assert "elt doctor --bundle" in run_elt("doctor", "--help", env={}).stdout


# --- the incident bundle ------------------------------------------------------------------

SECRETS = ("wh-pass-1f2e", "shop-pass-3d4c", "file-token-5b6a", API_TOKEN)


@pytest.fixture
def incident(elt_env, warehouse, tmp_path):
    """A project whose secrets sit in the URLs, the environment and .dlt/secrets.toml,
    with an audit run whose error line leaked two of them."""
    project = copy_project(tmp_path)
    (project / ".dlt" / "secrets.toml").write_text(
        f'[sources.marketing]\nbucket_url = "landing"\naccess_token = "{SECRETS[2]}"\n'
    )
    execute(warehouse.url, AUDIT_DDL)
    execute(
        warehouse.url,
        "insert into elt_audit.runs (run_id, command, started_at, status, error) values"
        " ('r1', 'load', now(), 'error', %s)",
        (f"load shop: connect failed for tokens {SECRETS[2]} {SECRETS[3]}",),
    )
    # the embedded test server checks passwords: two logins whose passwords are the secrets
    logins = []
    for role, secret, url in (
        ("elt_incident_wh", SECRETS[0], elt_env["ELT_WAREHOUSE_URL"]),
        ("elt_incident_shop", SECRETS[1], elt_env["SOURCES__SHOP__CREDENTIALS"]),
    ):
        execute(
            warehouse.url,
            f"do $$ begin create role {role} superuser login password '{secret}';"
            f" exception when duplicate_object then null; end $$",
        )
        logins.append(dataclasses.replace(parse_url(url), user=role, password=secret).url)
    url, shop = logins
    return {
        **elt_env,
        **rest_env("http://127.0.0.1:9/api", token=SECRETS[3]),
        "ELT_WAREHOUSE_URL": url,
        "SOURCES__SHOP__CREDENTIALS": shop,
        "ELT_PROJECT_DIR": str(project),
    }


def members(path) -> dict[str, str]:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            return {n.split("/", 1)[1]: archive.read(n).decode() for n in archive.namelist()}
    with tarfile.open(path) as archive:
        return {
            m.name.split("/", 1)[1]: io.TextIOWrapper(archive.extractfile(m)).read()
            for m in archive.getmembers()
        }


@pytest.mark.parametrize("name", ["incident.tar.gz", "incident.zip"])
def test_the_bundle_holds_the_report_and_context_and_no_secret(incident, tmp_path, name):
    target = tmp_path / name
    result = run_elt("doctor", "--bundle", str(target), env=incident)
    assert result.returncode == 1, result.stderr  # the payments API is down
    files = members(target)
    assert {
        "doctor.json", "versions.json", "config/.dlt/config.toml", "config/.dlt/secrets.toml.keys",
        "config/dbt/dbt_project.yml", "config/environment.json", "runs.json",
        "failing_tests.json", "last_load_trace.json",
    } <= set(files)  # fmt: skip
    assert json.loads(files["doctor.json"])["exit_code"] == 1
    assert json.loads(files["versions.json"])["packages"]["dlt"]
    assert json.loads(files["runs.json"])[0]["error"].startswith("load shop: connect failed")
    assert "sources.marketing.access_token = ***" in files["config/.dlt/secrets.toml.keys"]
    everything = "\n".join(files.values()) + result.stdout + result.stderr
    for secret in SECRETS:
        assert secret not in everything, secret
