"""The local dbt_expectations subset accepts exactly the hub package's arguments.

`hub_signatures.json` holds each test's signature as metaplane/dbt-expectations 0.10.9
declares it (read from the package's source). The subset's `{% test %}` signatures must
equal it, and every use of a dbt_expectations test, in the case suite and in the project's
models, must parse against both: no argument either package lacks, none it requires missing.
So YAML that runs with the subset runs unchanged with the hub package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from support import PROJECT

HERE = Path(__file__).parent
HUB = {
    name: spec
    for name, spec in json.loads((HERE / "hub_signatures.json").read_text()).items()
    if not name.startswith("_")
}
SUBSET = PROJECT / "dbt" / "packages_local" / "dbt_expectations" / "macros"
_TEST = re.compile(r"\{%-?\s*test\s+(\w+)\s*\((.*?)\)\s*-?%\}", re.DOTALL)
_BUILTIN = {"model", "column_name"}


def _literal(value: str) -> str:
    """A Jinja default spelled the way the hub package spells it (None, True, 'x')."""
    value = value.strip().replace('"', "'")
    return {"none": "None", "true": "True", "false": "False"}.get(value.lower(), value)


def subset_signatures() -> dict[str, dict]:
    signatures = {}
    for path in sorted(SUBSET.glob("*.sql")):
        for name, params in _TEST.findall(path.read_text()):
            arguments, column = {}, False
            for param in (p.strip() for p in params.split(",") if p.strip()):
                key, _, default = param.partition("=")
                key = key.strip()
                if key == "column_name":
                    column = True
                if key not in _BUILTIN:
                    arguments[key] = _literal(default) if default else None
            signatures[name] = {"column": column, "arguments": arguments}
    return signatures


def uses(path: Path) -> list[tuple[str, str, dict, bool]]:
    """(where, test, arguments, on a column) for each dbt_expectations test in a YAML file."""
    found = []
    document = yaml.safe_load(path.read_text()) or {}
    for model in document.get("models") or []:
        places = [(model["name"], model.get("data_tests") or [], False)]
        places += [
            (f"{model['name']}.{column['name']}", column.get("data_tests") or [], True)
            for column in model.get("columns") or []
        ]
        for where, tests, on_column in places:
            for test in tests:
                if not isinstance(test, dict):
                    continue
                ((name, definition),) = test.items()
                if name.startswith("dbt_expectations."):
                    arguments = (definition or {}).get("arguments") or {}
                    found.append((where, name.split(".", 1)[1], arguments, on_column))
    return found


YAML_FILES = [HERE / "models" / "_cases.yml", *sorted((PROJECT / "dbt" / "models").rglob("*.yml"))]
USES = [
    pytest.param(test, arguments, on_column, id=f"{path.stem}:{where}:{test}")
    for path in YAML_FILES
    for where, test, arguments, on_column in uses(path)
]


def test_the_subset_declares_exactly_the_hub_signatures():
    assert subset_signatures() == HUB


@pytest.mark.parametrize(("test", "arguments", "on_column"), USES)
def test_every_use_parses_against_the_hub_and_the_subset(test, arguments, on_column):
    for package, signatures in (("hub", HUB), ("subset", subset_signatures())):
        assert test in signatures, f"{package} has no {test}"
        spec = signatures[test]
        unknown = set(arguments) - set(spec["arguments"])
        assert not unknown, f"{package} {test} has no argument {sorted(unknown)}"
        required = {key for key, default in spec["arguments"].items() if default is None}
        assert required <= set(arguments), f"{package} {test} needs {sorted(required)}"
        assert spec["column"] == on_column, (
            f"{test} is a {'column' if spec['column'] else 'model'} test"
        )


def test_the_case_project_sets_the_time_zone_the_hub_package_reads():
    project = yaml.safe_load((HERE / "dbt_project.yml").read_text())
    assert project["vars"]["dbt_date:time_zone"] == "UTC"
