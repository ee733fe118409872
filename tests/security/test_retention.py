"""After a successful load no completed dlt package (parquet of every row) and no trace
stays in dlt's working dir, unless kept on purpose, and then for its owner only."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import run_elt


def completed(pipelines: Path) -> list[Path]:
    return [*pipelines.glob("*/load/loaded/*"), *pipelines.glob("*/trace.pickle")]


@pytest.fixture
def seeded(elt_env, shop_url):
    from demo import shop

    shop.seed(shop_url, 20)
    return elt_env


def test_a_successful_load_leaves_no_completed_package_or_trace(seeded):
    pipelines = Path(seeded["ELT_PIPELINES_DIR"])
    run_elt("load", "shop", env=seeded, check=True)
    assert (pipelines / "elt_shop").is_dir()
    assert completed(pipelines) == []


def test_kept_packages_are_readable_by_their_owner_only(seeded):
    pipelines = Path(seeded["ELT_PIPELINES_DIR"])
    run_elt("load", "shop", env={**seeded, "ELT_KEEP_LOAD_PACKAGES": "1"}, check=True)
    kept = completed(pipelines)
    assert kept
    for path in kept:
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            assert item.stat().st_mode & 0o077 == 0, item
