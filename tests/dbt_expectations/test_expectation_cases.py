"""The local dbt_expectations subset: every test has passing and failing cases, one dbt run.

The fixture project beside this file (models with known defects, `_cases.yml`) is built
once with the subset installed as `dbt_packages/dbt_expectations`, exactly as elt installs
it; each case is then checked against its result: `pass_*` passes, `fail_*` fails with
`meta.expect_failures` failing rows or groups.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import fresh_databases
from support import PROJECT

HERE = Path(__file__).parent
PACKAGE = PROJECT / "dbt" / "packages_local" / "dbt_expectations"


def _cases() -> dict[str, dict]:
    """Case name -> its test definition, from the fixture YAML."""
    spec = yaml.safe_load((HERE / "models" / "_cases.yml").read_text())
    cases = {}
    for model in spec["models"]:
        tests = list(model.get("data_tests", []))
        for column in model.get("columns", []):
            tests += column.get("data_tests", [])
        for test in tests:
            ((name, definition),) = test.items()
            cases[definition["name"]] = {"test": name.split(".", 1)[1], **definition}
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def results(server, tmp_path_factory) -> dict[str, object]:
    from dbt.cli.main import dbtRunner

    project = tmp_path_factory.mktemp("expectation_cases")
    shutil.copytree(
        HERE,
        project,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.py", "__pycache__", "target", "logs", "dbt_packages"),
    )
    shutil.copytree(PACKAGE, project / "dbt_packages" / "dbt_expectations")
    with fresh_databases(server) as (warehouse, _):
        saved = dict(os.environ)
        os.environ.update(warehouse.dbt_env())
        try:
            result = dbtRunner().invoke(
                [
                    "build",
                    "--project-dir",
                    str(project),
                    "--profiles-dir",
                    str(PROJECT / "dbt"),
                    "--log-level",
                    "none",
                    "--no-send-anonymous-usage-stats",
                ]
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
    assert result.exception is None, result.exception
    return {r.node.name: r for r in result.result.results}


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_passes_or_fails_as_named(results, case):
    result = results[case]
    expected = "fail" if case.startswith("fail_") else "pass"
    status = str(getattr(result.status, "value", result.status))
    assert status == expected, f"{case}: {status} ({result.message})"
    expected_failures = CASES[case].get("config", {}).get("meta", {}).get("expect_failures", 0)
    assert result.failures == expected_failures


def test_every_expectation_of_the_subset_has_a_passing_and_a_failing_case():
    defined = set()
    for macro_file in (PACKAGE / "macros").glob("*.sql"):
        defined |= set(re.findall(r"{%-?\s*test\s+(expect_\w+)\s*\(", macro_file.read_text()))
    assert len(defined) >= 12
    for expectation in sorted(defined):
        kinds = {name.split("_", 1)[0] for name, c in CASES.items() if c["test"] == expectation}
        assert kinds == {"pass", "fail"}, expectation
