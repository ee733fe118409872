"""Configuration checks: files parse, settings present, no secret committed, dbt project
and packages in place. Files only: nothing here connects anywhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from diagnostics.context import Context
from diagnostics.results import Outcome, fail, ok, warn
from diagnostics.sources import SourceSpec
from runtime.secrets import known_secrets

RECHECK = "`elt doctor --only config`"


def _yaml(path: Path) -> Any:
    import yaml

    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def dbt_yaml_files(project: Path) -> list[Path]:
    dbt = project / "dbt"
    found = [dbt / name for name in ("dbt_project.yml", "profiles.yml", "packages.yml")]
    found += sorted((dbt / "models").rglob("*.yml")) + sorted((project / "seeds").glob("*.yml"))
    return [path for path in found if path.exists()]


def files_parse(ctx: Context) -> Outcome:
    errors = dict(ctx.config.errors)
    files = [*ctx.config.files, *dbt_yaml_files(ctx.project)]
    for path in files:
        if path.suffix != ".yml":
            continue
        try:
            _yaml(path)
        except Exception as exc:  # yaml.YAMLError and friends: the first line names the spot
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else str(exc).splitlines()[0]
            errors[str(path.relative_to(ctx.project))] = where
    if errors:
        first, cause = next(iter(errors.items()))
        return fail(
            f"{len(errors)} file(s) do not parse: "
            + "; ".join(f"{name} ({where})" for name, where in errors.items()),
            f"fix {first} ({cause}), then {RECHECK}",
            files=sorted(errors),
        )
    return ok(f"{len(files)} configuration files parse", files=len(files))


def warehouse_setting(ctx: Context) -> Outcome:
    """ELT_WAREHOUSE_URL is valid, or unset and the embedded warehouse is used."""
    if ctx.warehouse is not None:
        where = "embedded PostgreSQL in .elt/" if ctx.warehouse.embedded else ctx.warehouse.safe_url
        return ok(f"warehouse: {where}", embedded=ctx.warehouse.embedded)
    detail, hint = ctx.warehouse_problem or ("no warehouse", "set ELT_WAREHOUSE_URL")
    if not ctx.warehouse_misconfigured:  # the setting is fine: connectivity reports the server
        return ok("warehouse: embedded PostgreSQL in .elt/ (not running)", embedded=True)
    return fail(f"ELT_WAREHOUSE_URL: {detail}", hint)


def source_settings(ctx: Context, spec: SourceSpec) -> Outcome:
    if spec.kind is None:
        return fail(
            f"{spec.name}: cannot tell its kind (postgres, rest or files)",
            f'set kind = "rest" (or "postgres", "files") under [sources.{spec.name}]'
            " in .dlt/config.toml",
        )
    missing = [key for key in spec.missing() if ctx.source_setting(spec, key) is None]
    if missing:
        key = missing[0]
        env = f"SOURCES__{spec.name.upper()}__{key.upper()}"
        where = "secrets.toml" if key in ("token", "credentials") else "config.toml"
        return fail(
            f"{spec.name} ({spec.kind}): missing {', '.join(missing)}",
            f"set {env}, or {key} under [sources.{spec.name}] in .dlt/{where}",
            missing=missing,
        )
    registered = "registered" if spec.registered else "configured only (not in loaders.SOURCES)"
    detail = f"{spec.name}: {spec.kind} source ({spec.kind_from}), {registered}"
    if not spec.registered:
        return warn(
            detail,
            f"register it in loaders/__init__.py SOURCES, or remove [sources.{spec.name}]",
            kind=spec.kind,
        )
    return ok(detail, kind=spec.kind)


# --- secrets in committed files ---------------------------------------------------------

SCANNED_SUFFIXES = (".toml", ".yml", ".yaml", ".env", ".ini", ".cfg", ".json")
SCANNED_CODE_DIRS = ("loaders/", "elt/", "diagnostics/")  # plus their .py files
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s'\"]+:([^@\s'\"]+)@", re.IGNORECASE)
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)\b(password|passwd|secret|token|api_key|apikey|access_key|private_key|client_secret)
        \s*[:=]\s*["']([^"'\s]{4,})["']"""
)
_PLACEHOLDERS = ("{{", "${", "<", "***", "dlt.secrets", "env_var", "changeme", "xxx")
_PLACEHOLDER_WORDS = {"password", "pass", "passwd", "pw", "secret", "token", "example", "user"}


def committed_files(project: Path) -> tuple[list[Path], bool]:
    """Files git tracks (scannable ones), or the known configuration files outside git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=project, capture_output=True, timeout=3, check=True
        ).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        fallback = [project / ".dlt" / "config.toml", *dbt_yaml_files(project)]
        return [p for p in fallback if p.exists()], False
    paths = []
    for name in filter(None, listed.split("\0")):
        scannable = name.endswith(SCANNED_SUFFIXES) or (
            name.endswith(".py") and name.startswith(SCANNED_CODE_DIRS)
        )
        if scannable and not name.startswith("tests/") and (project / name).is_file():
            paths.append(project / name)
    return paths, True


def _placeholder(value: str) -> bool:
    """Documentation values (`user:password@`, `${TOKEN}`, `<token>`) are not secrets."""
    lowered = value.lower()
    return lowered in _PLACEHOLDER_WORDS or any(marker in lowered for marker in _PLACEHOLDERS)


def secret_findings(project: Path, paths: list[Path]) -> list[str]:
    """`file:line (what)` for every secret-looking value; never the value itself."""
    secrets = known_secrets()
    findings = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        relative = path.relative_to(project)
        for number, line in enumerate(text.splitlines(), 1):
            what = None
            url = _URL_WITH_PASSWORD.search(line)
            if url and not _placeholder(url.group(1)):
                what = "URL with a password"
            assignment = _SECRET_ASSIGNMENT.search(line)
            if assignment and not _placeholder(assignment.group(2)):
                what = f"{assignment.group(1).lower()} value"
            if any(secret in line for secret in secrets):
                what = "a secret from the environment"
            if what:
                findings.append(f"{relative}:{number} ({what})")
    return findings


def no_committed_secrets(ctx: Context) -> Outcome:
    paths, in_git = committed_files(ctx.project)
    names = {str(p.relative_to(ctx.project)) for p in paths}
    findings = secret_findings(ctx.project, paths)
    if in_git and ".dlt/secrets.toml" in names:
        findings.insert(0, ".dlt/secrets.toml is committed")
    if findings:
        return fail(
            f"{len(findings)} secret(s) in committed files: {', '.join(findings[:5])}",
            "move them to .dlt/secrets.toml or the environment, `git rm --cached` the file,"
            " and rotate them",
            findings=findings,
        )
    scope = "committed" if in_git else "configuration (not a git checkout)"
    return ok(f"no secret in {len(paths)} {scope} files", files=len(paths))


# --- dbt --------------------------------------------------------------------------------


def dbt_project(ctx: Context) -> Outcome:
    dbt = ctx.project / "dbt"
    project_file = dbt / "dbt_project.yml"
    if not project_file.exists():
        return fail("dbt/dbt_project.yml is missing", "`git checkout dbt/dbt_project.yml`")
    try:
        project = _yaml(project_file) or {}
        profiles = _yaml(dbt / "profiles.yml") if (dbt / "profiles.yml").exists() else {}
    except Exception:
        return fail("dbt project YAML does not parse", f"see the files check: {RECHECK}")
    profile = project.get("profile")
    if not project.get("name") or not profile:
        return fail("dbt_project.yml lacks name or profile", "add `name:` and `profile: elt`")
    if profile not in (profiles or {}):
        return fail(
            f"dbt profile {profile!r} is not in dbt/profiles.yml",
            "restore it: `git checkout dbt/profiles.yml`",
        )
    models = [p for p in (dbt / "models").rglob("*.sql")]
    detail = f"project {project['name']!r}, profile {profile!r}, {len(models)} models"
    manifest = dbt / "target" / "manifest.json"
    newest = max((p.stat().st_mtime for p in models), default=0.0)
    if manifest.exists() and manifest.stat().st_mtime < newest:
        detail += "; manifest older than the models (next `elt transform` reparses)"
    elif not manifest.exists():
        detail += "; not compiled yet"
    return ok(detail, models=len(models), manifest=manifest.exists())


def _package_dir_name(spec: dict[str, Any]) -> str:
    raw = spec.get("package") or spec.get("git") or spec.get("local") or ""
    name = str(raw).rstrip("/").split("/")[-1]
    return name.removesuffix(".git").replace("-", "_")


# elt installs the in-repo subset of a hub package from dbt/packages_local/<name> into
# dbt_packages/<name> where the hub cannot be reached, marking the copy with this file
LOCAL_PACKAGES = "packages_local"
LOCAL_MARKER = ".elt-local-subset"


def package_source(dbt: Path, name: str) -> str:
    """hub (installed by dbt deps), bundled (the in-repo subset installed), bundled, not
    installed yet (elt copies it in before dbt runs) or none."""
    installed = dbt / "dbt_packages" / name
    if (installed / "dbt_project.yml").exists():
        return "bundled" if (installed / LOCAL_MARKER).exists() else "hub"
    if (dbt / LOCAL_PACKAGES / name / "dbt_project.yml").exists():
        return "bundled, not installed yet"
    return "none"


def _uses_dbt_expectations(project: Path) -> bool:
    return any(
        "dbt_expectations." in path.read_text(encoding="utf-8", errors="replace")
        for path in (project / "dbt" / "models").rglob("*.yml")
    )


def dbt_packages(ctx: Context) -> Outcome:
    dbt = ctx.project / "dbt"
    declared: list[dict[str, Any]] = []
    for name in ("packages.yml", "dependencies.yml"):
        if (dbt / name).exists():
            try:
                declared += (_yaml(dbt / name) or {}).get("packages") or []
            except Exception:
                return fail(f"dbt/{name} does not parse", f"see the files check: {RECHECK}")
    names = [_package_dir_name(p) for p in declared if isinstance(p, dict)]
    missing = [name for name in names if package_source(dbt, name) == "none"]
    expectations = package_source(dbt, "dbt_expectations")
    facts = {"declared": names, "missing": missing, "dbt_expectations": expectations}
    hint = "install them: `.venv/bin/dbt deps --project-dir dbt --profiles-dir dbt`"
    if expectations == "none" and _uses_dbt_expectations(ctx.project):
        return fail(
            "models use dbt_expectations tests, and neither the hub package nor the bundled"
            " subset is there",
            hint,
            **facts,
        )
    detail = f"{len(names)} package(s) declared; dbt-expectations: {expectations}"
    if missing:
        return warn(f"{detail}; not installed: {', '.join(missing)}", hint, **facts)
    return ok(detail, **facts)
