"""Where the project lives: dbt/, .dlt/ and .elt/ are found relative to it."""

from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> Path:
    """`ELT_PROJECT_DIR`, else the nearest parent of the cwd holding dbt/dbt_project.yml,
    else the checkout this package was installed from (an editable install)."""
    configured = os.environ.get("ELT_PROJECT_DIR")
    if configured:
        return Path(configured).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dbt" / "dbt_project.yml").exists():
            return candidate
    return Path(__file__).resolve().parents[1]
