"""Shop values arrow or the warehouse cannot hold: exact numerics, per-row quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import execute, query

from demo import shop
from loaders import pipeline


@pytest.fixture
def seeded(elt_env, shop_url):
    shop.seed(shop_url, 50)
    return elt_env


def load(env, **overrides) -> pipeline.LoadReport:
    return pipeline.run(
        "shop",
        destination_url=env["ELT_WAREHOUSE_URL"],
        pipelines_dir=Path(env["ELT_PIPELINES_DIR"]),
        source_overrides=overrides or None,
    )


def test_infinity_timestamp_and_nan_numeric_are_quarantined_and_other_rows_load(
    seeded, warehouse, shop_url
):
    load(seeded)
    execute(shop_url, "update orders set ordered_at = 'infinity' where order_id = 1")
    execute(shop_url, "update orders set shipping_amount = 'NaN' where order_id = 2")
    execute(shop_url, "update orders set status = 'paid' where order_id = 3")
    report = load(seeded)
    assert report.rows["orders"] == 1
    assert report.counts["orders"] == {"read": 3, "loaded": 1, "quarantined": 2}
    notes = " ".join(report.notes)
    assert "orders" in notes and "ordered_at" in notes and "shipping_amount" in notes
    rows = query(
        warehouse,
        "select feed, row_key, column_name, reason, raw_text from elt_audit.quarantine"
        " where source = 'shop' order by row_key",
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("orders", "order_id=1", "ordered_at"),
        ("orders", "order_id=2", "shipping_amount"),
    ]
    assert all(r[4] is None for r in rows)  # no value kept or printed
    assert "NaN" not in rows[1][3].replace("NaN or Infinity", "")
    # a later run loads new rows normally
    shop.tick(shop_url)
    assert load(seeded).rows["orders"] > 0
