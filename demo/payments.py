"""The demo payment provider's data: payments and refunds for the demo shop's orders.

They live in schema ``payments_api`` of the shop database (``payments_schema.sql``) and are
derived from the orders with set-based SQL, deterministically, like the shop itself:

- placed orders: half have a pending payment (checkout started), the rest none;
- paid, shipped and delivered orders: one succeeded payment of the order total, after a
  failed attempt (card declined) for about 8 in 100;
- cancelled orders: half were paid and then refunded in full when cancelled;
- delivered orders: about 6 in 100 have a refund, a third of them in full.

``tick`` follows the shop's own tick: it settles payments of orders that got paid, starts
payments for new orders, refunds one delivered order (pending) and settles the refunds
left pending by the previous tick. demo/payments_api.py serves the tables over HTTP.

Nothing here prints: DSNs may carry passwords.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

from demo.shop import _rand, _text_array, _transaction

__all__ = ["counts", "is_seeded", "seed", "tick"]

_SCHEMA_FILE = Path(__file__).with_name("payments_schema.sql")
_TABLES = ("payments", "refunds")
_METHODS = ("card", "card", "card", "card", "paypal", "paypal", "bank_transfer")


class _Salt(IntEnum):
    """Hash salts of the payment attributes; far from demo.shop's so they never correlate."""

    PAYMENT = 1001
    METHOD = 1002
    REFUND = 1003
    TICK_REFUND = 1004


# One row per order with its total in cents (items not soft-deleted, after discounts, plus
# shipping) and a per-order roll in [0, 100) that decides its payment story. An order whose
# amount or time has no value (a NaN shipping amount, an infinite ordered_at) gets none.
_ORDER_TOTALS = f"""
    select o.order_id, o.status, o.currency, o.ordered_at, o.updated_at,
           round((coalesce(sum(i.quantity * i.unit_price - i.discount_amount), 0)
                  + o.shipping_amount) * 100)::bigint as amount,
           mod({_rand("o.order_id", _Salt.PAYMENT)}, 100) as roll,
           mod({_rand("o.order_id", _Salt.REFUND)}, 100) as refund_roll,
           ({_text_array(_METHODS)})[1 + mod({_rand("o.order_id", _Salt.METHOD)}, {len(_METHODS)})]
               as payment_method
    from public.orders as o
    left join public.order_items as i
        on i.order_id = o.order_id and i.deleted_at is null
    where o.shipping_amount <> 'NaN' and isfinite(o.ordered_at)
    group by o.order_id
"""

_PAID_STATUSES = "('paid', 'shipped', 'delivered')"

# attempt 1 is a declined card before the successful attempt 2; payments of placed orders
# are pending. Payment times sit between the order and its next transition, never in the future.
_INSERT_PAYMENTS = f"""
insert into payments_api.payments
    (order_id, amount, currency, payment_method, status, created_at, updated_at)
select order_id, amount, currency, payment_method, status, paid_at, paid_at
from (
    select t.order_id, t.amount, t.currency, t.payment_method, p.status, p.attempt,
           least(t.ordered_at + p.after, now()) as paid_at
    from ({_ORDER_TOTALS}) as t
    cross join lateral (
        select 'failed' as status, 1 as attempt, interval '7 minutes' as after
        where t.roll < 8
            and (t.status in {_PAID_STATUSES} or (t.status = 'cancelled' and t.roll < 50))
        union all
        select 'succeeded', 2, interval '10 minutes'
        where t.status in {_PAID_STATUSES} or (t.status = 'cancelled' and t.roll < 50)
        union all
        select 'pending', 2, interval '1 minute'
        where t.status = 'placed' and t.roll < 50
    ) as p
) as planned
order by order_id, attempt
"""

_INSERT_REFUNDS = f"""
insert into payments_api.refunds
    (payment_id, order_id, amount, currency, reason, status, created_at, updated_at)
select payment_id, order_id, amount, currency, reason, 'succeeded', refunded_at, refunded_at
from (
    select p.payment_id, p.order_id, p.currency,
           case when t.status = 'cancelled' or t.refund_roll < 2 then p.amount
                else round(p.amount * 0.25)::bigint end as amount,
           case when t.status = 'cancelled' then 'order_cancelled'
                when t.refund_roll < 2 then 'returned'
                else 'partial_return' end as reason,
           case when t.status = 'cancelled' then t.updated_at
                else least(t.ordered_at + interval '10 days', now()) end as refunded_at
    from payments_api.payments as p
    inner join ({_ORDER_TOTALS}) as t on t.order_id = p.order_id
    where p.status = 'succeeded'
        and (t.status = 'cancelled' or (t.status = 'delivered' and t.refund_roll < 6))
) as planned
order by order_id
"""


def _schema_exists(cur) -> bool:
    cur.execute("select to_regclass('payments_api.refunds') is not null")
    return cur.fetchone()[0]


def counts(dsn: str) -> dict[str, int]:
    """Rows per payments table; raises psycopg2.errors.UndefinedTable before the first seed."""
    with _transaction(dsn) as cur:
        cur.execute(
            " union all ".join(f"select count(*) from payments_api.{table}" for table in _TABLES)
        )
        return {table: row[0] for table, row in zip(_TABLES, cur.fetchall(), strict=True)}


def is_seeded(dsn: str) -> bool:
    """True when the payments tables exist (they may legitimately be empty)."""
    with _transaction(dsn) as cur:
        return _schema_exists(cur)


def seed(dsn: str) -> dict[str, int]:
    """(Re)create the payments tables from the shop's current orders, in one transaction."""
    with _transaction(dsn) as cur:
        cur.execute("drop schema if exists payments_api cascade")
        cur.execute(_SCHEMA_FILE.read_text(encoding="utf-8"))
        cur.execute(_INSERT_PAYMENTS)
        result = {"payments": cur.rowcount}
        cur.execute(_INSERT_REFUNDS)
        result["refunds"] = cur.rowcount
        cur.execute("analyze payments_api.payments, payments_api.refunds")
    return result


def tick(dsn: str) -> dict[str, int]:
    """Payment activity for the shop's latest state, in one transaction (run after shop.tick).

    Pending payments of orders now paid succeed; paid orders without a payment get one;
    placed orders without a payment start one (pending); refunds left pending by the
    previous tick succeed; one delivered order gets a pending partial refund.
    """
    with _transaction(dsn) as cur:
        if not _schema_exists(cur):
            raise ValueError("the demo payments are not seeded; seed them first")
        cur.execute(
            f"""
            update payments_api.payments as p set status = 'succeeded'
            from public.orders as o
            where o.order_id = p.order_id and p.status = 'pending'
                and o.status in {_PAID_STATUSES}
            """
        )
        payments_updated = cur.rowcount
        cur.execute(
            f"""
            insert into payments_api.payments
                (order_id, amount, currency, payment_method, status, created_at)
            select t.order_id, t.amount, t.currency, t.payment_method,
                   case when t.status = 'placed' then 'pending' else 'succeeded' end, now()
            from ({_ORDER_TOTALS}) as t
            where t.status in ('placed', 'paid', 'shipped', 'delivered')
                and not exists (
                    select from payments_api.payments as p
                    where p.order_id = t.order_id and p.status <> 'failed'
                )
            order by t.order_id
            """
        )
        payments_inserted = cur.rowcount
        cur.execute("update payments_api.refunds set status = 'succeeded' where status = 'pending'")
        refunds_updated = cur.rowcount
        cur.execute(
            f"""
            insert into payments_api.refunds
                (payment_id, order_id, amount, currency, reason, status, created_at)
            select p.payment_id, p.order_id, round(p.amount * 0.25)::bigint, p.currency,
                   'partial_return', 'pending', now()
            from payments_api.payments as p
            inner join public.orders as o on o.order_id = p.order_id
            where p.status = 'succeeded' and o.status = 'delivered' and o.deleted_at is null
                and not exists (
                    select from payments_api.refunds as r where r.payment_id = p.payment_id
                )
            order by {
                _rand("p.order_id + (select count(*) from payments_api.refunds)", _Salt.TICK_REFUND)
            }
            limit 1
            """
        )
        refunds_inserted = cur.rowcount
    return {
        "payments_inserted": payments_inserted,
        "payments_updated": payments_updated,
        "refunds_inserted": refunds_inserted,
        "refunds_updated": refunds_updated,
    }
