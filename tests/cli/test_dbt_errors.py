"""dbt's multi-line errors become one line naming the node, its file and the root cause."""

from __future__ import annotations

from elt.dbt_runner import root_cause, split_cause

DATABASE_ERROR = """Database Error in model fct_orders (models/marts/sales/fct_orders.sql)
  column "order_totl" does not exist
  LINE 12:     sum(order_totl) as revenue
                   ^
  HINT:  Perhaps you meant to reference the column "orders.order_total".
  compiled code at target/run/elt/models/marts/sales/fct_orders.sql"""

UNIT_TEST_ERROR = """Runtime Error in unit_test rpt_is_net (models/marts/_unit_tests.yml)
  An error occurred during execution of unit test 'rpt_is_net'. There may be an error in the \
unit test definition: check the data types.
   Database Error
    column "order_totl" does not exist
    LINE 137:         sum(order_totl) as gross_revenue,"""

MISSING_REF = """Compilation Error
  Model 'model.elt.rpt_daily_revenue' (models/marts/sales/rpt_daily_revenue.sql) depends on a \
node named 'fct_ordrs' which was not found"""


def test_a_database_error_names_the_model_its_file_and_the_missing_column():
    assert root_cause(DATABASE_ERROR) == (
        'fct_orders (models/marts/sales/fct_orders.sql): column "order_totl" does not exist'
    )


def test_a_wrapped_database_error_gives_the_databases_words():
    where, cause = split_cause(UNIT_TEST_ERROR)
    assert where == "rpt_is_net (models/marts/_unit_tests.yml)"
    assert cause == 'column "order_totl" does not exist'


def test_a_missing_ref_names_the_model_its_file_and_the_ref():
    assert root_cause(MISSING_REF) == (
        "rpt_daily_revenue (models/marts/sales/rpt_daily_revenue.sql): ref 'fct_ordrs' not found"
    )


def test_a_plain_message_stays_as_it_is():
    assert root_cause("canceling statement due to lock timeout") == (
        "canceling statement due to lock timeout"
    )
