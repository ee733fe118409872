"""Configuration checks on copies of the project, broken on purpose, and the kind of each
configured source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT
from doctor_support import check, copy_project, doctor

from diagnostics.sources import configured_sources, kind_of


@pytest.fixture
def project(tmp_path) -> Path:
    return copy_project(tmp_path)


def at(project: Path, **env: str) -> dict[str, str]:
    return {"ELT_PROJECT_DIR": str(project), **env}


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


def test_the_projects_own_configuration_is_ok():
    checks = ("config/files", "config/source/shop", "config/secrets", "config/dbt_project")
    for check_id in (*checks, "config/dbt_packages"):
        result = check({"ELT_PROJECT_DIR": str(PROJECT)}, check_id)
        assert result.status == "OK", (check_id, result.detail)


def test_a_config_file_that_does_not_parse_fails_and_exits_2(project):
    (project / ".dlt" / "config.toml").write_text("[sources.shop\nlag_seconds = 600\n")
    code, payload, stderr = doctor(at(project), "--only", "config")
    assert code == 2
    (files,) = [c for c in payload["checks"] if c["id"] == "config/files"]
    assert files["status"] == "FAIL" and ".dlt/config.toml" in files["detail"]
    assert "elt doctor --only config" in files["hint"]
    assert "config/files" in stderr


def test_a_dbt_yaml_that_does_not_parse_names_file_and_line(project):
    path = project / "dbt" / "models" / "marts" / "core" / "_core__models.yml"
    path.write_text(path.read_text() + "\n  - name: [unclosed\n")
    result = check(at(project), "config/files")
    assert result.status == "FAIL"
    assert "dbt/models/marts/core/_core__models.yml (line" in result.detail


def test_a_dbt_project_whose_profile_is_missing_fails(project):
    (project / "dbt" / "profiles.yml").write_text("other:\n  target: x\n")
    result = check(at(project), "config/dbt_project")
    assert result.status == "FAIL" and "profile 'elt' is not in dbt/profiles.yml" in result.detail
    assert result.hint == "restore it: `git checkout dbt/profiles.yml`"


def test_a_committed_secret_fails_naming_the_file_and_line_not_the_value(project):
    config = project / ".dlt" / "config.toml"
    block = "[sources.payments]\n"
    config.write_text(config.read_text().replace(block, f'{block}token = "live-9f8e7d6c5b"\n'))
    git(project, "init", "-q")
    git(project, "add", ".")
    result = check(at(project), "config/secrets")
    assert result.status == "FAIL"
    line = config.read_text().splitlines().index(block.strip()) + 2
    assert f".dlt/config.toml:{line} (token value)" in result.detail
    assert "live-9f8e7d6c5b" not in result.detail + result.hint
    assert "git rm --cached" in result.hint


def test_a_committed_secrets_toml_fails(project):
    (project / ".dlt" / "secrets.toml").write_text('[sources.shop]\ncredentials = "x"\n')
    git(project, "init", "-q")
    git(project, "add", "-f", ".")
    result = check(at(project), "config/secrets")
    assert result.status == "FAIL" and ".dlt/secrets.toml is committed" in result.detail


def test_documentation_placeholders_are_not_secrets(project):
    config = project / ".dlt" / "config.toml"
    config.write_text(
        config.read_text() + "# e.g. postgresql://user:password@host:5432/shop\n"
        'token = "${PAYMENTS_TOKEN}"\n'
    )
    assert check(at(project), "config/secrets").status == "OK"


def test_a_secret_from_the_environment_found_in_a_config_file_fails(project):
    config = project / ".dlt" / "config.toml"
    config.write_text(config.read_text() + "# the token was hunter2-from-env\n")
    env = at(project, SOURCES__PAYMENTS__TOKEN="hunter2-from-env")
    result = check(env, "config/secrets")
    assert result.status == "FAIL" and "a secret from the environment" in result.detail


def test_a_rest_source_without_its_token_fails_naming_the_setting():
    result = check(
        {"SOURCES__PAYMENTS__BASE_URL": "http://127.0.0.1:9/api"}, "config/source/payments"
    )
    assert result.status == "FAIL" and "missing token" in result.detail
    assert result.hint.startswith("set SOURCES__PAYMENTS__TOKEN")


def test_a_source_of_unknown_kind_fails_asking_for_kind():
    result = check({"SOURCES__MYSTERY__SOMETHING": "1"}, "config/source/mystery")
    assert result.status == "FAIL" and "cannot tell its kind" in result.detail
    assert 'kind = "rest"' in result.hint


def test_a_source_configured_but_not_registered_warns():
    env = {"SOURCES__BILLING__BASE_URL": "http://x/api", "SOURCES__BILLING__TOKEN": "t0k"}
    result = check(env, "config/source/billing")
    assert result.status == "WARN" and "not in loaders.SOURCES" in result.hint + result.detail


def test_a_declared_dbt_package_not_installed_warns_with_dbt_deps(project):
    packages = project / "dbt" / "packages.yml"
    packages.write_text(
        packages.read_text() + '  - package: dbt-labs/dbt_utils\n    version: [">=1.0.0"]\n'
    )
    result = check(at(project), "config/dbt_packages")
    assert result.status == "WARN" and "not installed: dbt_utils" in result.detail
    assert "dbt deps" in result.hint
    # dbt_expectations has no hub install either, but elt installs its bundled subset
    assert result.facts["missing"] == ["dbt_utils"]
    assert result.facts["dbt_expectations"] == "bundled, not installed yet"


def test_dbt_expectations_tests_without_hub_or_bundled_package_fail(project):
    # the models use dbt_expectations tests (the shop's sources YAML does)
    shutil.rmtree(project / "dbt" / "packages_local" / "dbt_expectations")
    result = check(at(project), "config/dbt_packages")
    assert result.status == "FAIL" and "dbt_expectations" in result.detail
    assert result.facts["dbt_expectations"] == "none"


def test_dbt_expectations_is_told_hub_bundled_or_bundled_not_installed_yet(project):
    from elt import dbt_packages

    dbt = project / "dbt"
    assert check(at(project), "config/dbt_packages").facts["dbt_expectations"] == (
        "bundled, not installed yet"
    )
    (installed,) = dbt_packages.ensure_installed(dbt)  # what elt does before dbt runs
    assert check(at(project), "config/dbt_packages").facts["dbt_expectations"] == "bundled"
    (installed.path / dbt_packages.MARKER).unlink()  # as `dbt deps` installs it
    assert check(at(project), "config/dbt_packages").facts["dbt_expectations"] == "hub"


# --- which kind a source is -----------------------------------------------------------


def test_the_kind_comes_from_config_kind_then_the_module_then_the_keys():
    registered = {"shop": "loaders.shop:shop"}
    assert kind_of("shop", {"kind": "files"}, registered) == ("files", "config kind")
    assert kind_of("shop", {}, registered) == ("postgres", "module")
    assert kind_of("api", {"base_url": "http://x"}, registered) == ("rest", "config keys")
    assert kind_of("drops", {"bucket_url": "landing"}, registered) == ("files", "config keys")
    assert kind_of("other", {"chunk_size": 5}, registered) == (None, "")


def test_registered_sources_come_first_then_configured_ones():
    specs = configured_sources(
        {"zeta": {"base_url": "http://z"}, "shop": {"tables": {}}, "alpha": {"bucket_url": "x"}},
        {"shop": "loaders.shop:shop"},
    )
    assert [(s.name, s.kind, s.registered) for s in specs] == [
        ("shop", "postgres", True),
        ("alpha", "files", False),
        ("zeta", "rest", False),
    ]
