"""Which variant columns count as unhandled: read by a model that does not name them."""

from __future__ import annotations

from diagnostics.schema_drift import VariantColumn, unhandled_variants

VARIANT = VariantColumn(
    schema="raw_shop",
    table="orders",
    column="shipping_amount__v_text",
    base_column="shipping_amount",
    base_type="numeric",
    variant_type="character varying",
)


def manifest(*models: tuple[str, str]) -> dict:
    """A manifest with the raw_shop.orders source and models (name, SQL) reading it."""
    return {
        "sources": {
            "source.elt.shop.orders": {
                "schema": "raw_shop",
                "identifier": "orders",
                "name": "orders",
            }
        },
        "nodes": {
            f"model.elt.{name}": {
                "name": name,
                "resource_type": "model",
                "raw_code": sql,
                "depends_on": {"nodes": ["source.elt.shop.orders"]},
            }
            for name, sql in models
        },
    }


def test_a_model_reading_the_changed_column_without_its_variant_is_named():
    found = unhandled_variants(
        [VARIANT], manifest(("stg_shop__orders", "select shipping_amount from x"))
    )
    assert [change.models for change in found] == [["stg_shop__orders"]]
    assert "raw_shop.orders.shipping_amount changed type" in found[0].describe()
    assert "shipping_amount__v_text" in found[0].describe()


def test_a_model_naming_the_variant_handles_it():
    sql = "select coalesce(shipping_amount, cast(shipping_amount__v_text as numeric)) from x"
    assert unhandled_variants([VARIANT], manifest(("stg_shop__orders", sql))) == []


def test_a_model_not_reading_the_column_is_not_affected():
    assert unhandled_variants([VARIANT], manifest(("stg_shop__orders", "select order_id"))) == []


def test_a_raw_table_no_model_reads_is_not_reported():
    assert unhandled_variants([VARIANT], manifest()) == []
