"""dbt packages without the hub: the local dbt_expectations subset stands in for it."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from support import PROJECT, run_elt

from elt import dbt_packages


@pytest.fixture
def dbt_dir(tmp_path):
    """A copy of the project's dbt/ with nothing installed, as on a fresh clone."""
    target = tmp_path / "dbt"
    shutil.copytree(
        PROJECT / "dbt", target, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    return target


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_first_install_copies_the_subset_under_the_hub_package_name(dbt_dir):
    (package,) = dbt_packages.ensure_installed(dbt_dir)
    assert (package.name, package.source, package.installed_now) == (
        "dbt_expectations",
        "local",
        True,
    )
    installed = dbt_dir / "dbt_packages" / "dbt_expectations"
    assert "name: dbt_expectations" in (installed / "dbt_project.yml").read_text()
    assert dbt_packages.ensure_installed(dbt_dir)[0].installed_now is False


def test_a_hub_install_is_left_alone(dbt_dir):
    hub_copy = dbt_dir / "dbt_packages" / "dbt_expectations"
    hub_copy.mkdir(parents=True)
    (hub_copy / "dbt_project.yml").write_text("name: dbt_expectations\n")
    (package,) = dbt_packages.ensure_installed(dbt_dir)
    assert package.source == "hub" and not package.installed_now
    assert (hub_copy / "dbt_project.yml").read_text() == "name: dbt_expectations\n"


def test_an_edited_subset_replaces_the_stale_copy(dbt_dir):
    dbt_packages.ensure_installed(dbt_dir)
    readme = dbt_dir / "packages_local" / "dbt_expectations" / "README.md"
    readme.write_text(readme.read_text() + "\nedited\n")
    assert dbt_packages.ensure_installed(dbt_dir)[0].installed_now is True
    installed = dbt_dir / "dbt_packages" / "dbt_expectations" / "README.md"
    assert installed.read_text().endswith("edited\n")


def test_deps_falls_back_to_the_subset_when_the_hub_does_not_answer(dbt_dir):
    env = {
        "ELT_PROJECT_DIR": str(dbt_dir.parent),
        "DBT_PACKAGE_HUB_URL": f"http://127.0.0.1:{closed_port()}/",
    }
    result = run_elt("deps", "--timeout", "2", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["note"] == "hub did not answer"
    assert payload["packages"] == [
        {"name": "dbt_expectations", "source": "local", "installed_now": True}
    ]
