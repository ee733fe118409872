"""dbt packages without the dbt package hub: the hub version where installed, else ours.

`dbt/packages.yml` declares the maintained hub package (metaplane/dbt_expectations). dbt
does not need `dbt deps` at run time: it only checks that `dbt_packages/` holds as many
packages as `packages.yml` declares, and loads each folder by the name in its
`dbt_project.yml`. So where the hub version is not installed, elt copies the subset written
in `dbt/packages_local/<name>/` (same package name, same test names and arguments) into
`dbt_packages/`, and the same YAML runs. A `.elt-local-subset` marker in the copy, holding a
digest of its source, tells the two apart and refreshes a stale copy.

Nothing here touches the network except `install_from_hub`, which only `elt deps` calls.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOCAL_PACKAGES_DIR = "packages_local"
INSTALL_DIR = "dbt_packages"
MARKER = ".elt-local-subset"
# dbt's own setting for a hub mirror; `elt deps` probes the same address
HUB_URL_ENV = "DBT_PACKAGE_HUB_URL"
DEFAULT_HUB_URL = "https://hub.getdbt.com/"


@dataclass(frozen=True)
class Package:
    name: str
    source: str  # "hub" (installed by `dbt deps`) or "local" (the subset in packages_local/)
    path: Path
    installed_now: bool = False

    def as_dict(self) -> dict[str, str | bool]:
        return {"name": self.name, "source": self.source, "installed_now": self.installed_now}


def local_packages(dbt_dir: Path) -> list[Path]:
    root = dbt_dir / LOCAL_PACKAGES_DIR
    return sorted(p for p in root.iterdir() if (p / "dbt_project.yml").exists())


def _digest(package_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(package_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_installed(dbt_dir: Path) -> list[Package]:
    """Each local package, unless installed from the hub, copied into dbt_packages/.

    Idempotent and cheap (a digest of a few small files); never touches the network.
    """
    install_dir = dbt_dir / INSTALL_DIR
    return [_ensure(source, install_dir / source.name) for source in local_packages(dbt_dir)]


def _ensure(source: Path, target: Path) -> Package:
    marker = target / MARKER
    if (target / "dbt_project.yml").exists() and not marker.exists():
        return Package(source.name, "hub", target)
    digest = _digest(source)
    if marker.exists() and marker.read_text().strip() == digest:
        return Package(source.name, "local", target)
    _copy(source, target, digest)
    return Package(source.name, "local", target, installed_now=True)


def _copy(source: Path, target: Path, digest: str) -> None:
    """Copy beside dbt_packages/ then swap in: dbt never sees a half-written package."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.name}-", dir=target.parent.parent))
    try:
        copy = staging / source.name
        shutil.copytree(source, copy)
        (copy / MARKER).write_text(digest + "\n")
        if target.exists():
            old = staging / "old"
            os.replace(target, old)
        os.replace(copy, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hub_url() -> str:
    return os.environ.get(HUB_URL_ENV) or DEFAULT_HUB_URL


def hub_reachable(timeout: float) -> bool:
    """One request to the hub's index, bounded by `timeout` seconds."""
    url = hub_url().rstrip("/") + "/api/v1/index.json"
    try:
        import urllib.request  # only where the hub is asked: not on every start

        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def remove_local_copies(dbt_dir: Path) -> None:
    """Before `dbt deps` installs the hub versions: drop our copies so none is left stale."""
    for source in local_packages(dbt_dir):
        target = dbt_dir / INSTALL_DIR / source.name
        if (target / MARKER).exists():
            shutil.rmtree(target)
