"""A load package the warehouse refuses for its data is moved aside, named, reported by
the doctor as FAIL with the commands that release it, and never wedges the next run."""

from __future__ import annotations

from pathlib import Path

import pytest
from doctor_support import check
from support import query

from demo import shop
from loaders import pipeline
from loaders.packages import PackageMovedAside


def poison_build(_pipeline):
    import dlt

    # Postgres text cannot hold NUL: extract and normalize pass, the COPY is refused
    @dlt.resource(name="poison", write_disposition="append")
    def poison():
        yield {"id": 1, "note": "a\x00b"}

    return poison()


def run(env, **kwargs) -> pipeline.LoadReport:
    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        **kwargs,
    )


def test_a_package_refused_for_its_data_is_moved_aside_and_the_next_run_is_clean(
    elt_env, warehouse, shop_url
):
    from elt.commands.load import describe_failure
    from runtime.errors import DataError

    shop.seed(shop_url, 20)
    with pytest.raises(PackageMovedAside) as caught:
        run(elt_env, build=poison_build)
    moved = caught.value.path
    assert moved.is_dir() and caught.value.table == "poison"
    assert "invalid byte sequence" in str(caught.value)
    error = describe_failure("shop", "loading", caught.value)
    assert isinstance(error, DataError) and str(moved) in str(error)
    assert f"rm -rf {moved}" in error.hint
    # the doctor names it as FAIL with the command that releases it
    result = check(elt_env, "data/shop/packages")
    assert result.status == "FAIL" and caught.value.load_id in result.detail
    assert f"rm -rf {moved}" in result.hint and "elt load shop" in result.hint
    # the next run extracts anew, with no pending package in its way
    report = run(elt_env)
    assert report.resumed_load_ids == []
    assert report.rows["orders"] == shop.counts(shop_url)["orders"]
    assert query(warehouse, "select count(*) from raw_shop._dlt_loads where status = 0") == [(1,)]
