"""The demo shop: a small OLTP-style source database for the ELT pipeline to load from.

All data is generated on the server with set-based SQL (``generate_series`` plus an integer
hash), so seeding a million orders needs no client round trips, and the same parameters
always produce the same rows. Timestamps are relative to the seeding transaction's
``now()``, so a fresh seed always looks current. The schema itself lives in
``shop_schema.sql`` next to this module.

Nothing here prints or logs: DSNs may carry passwords, and callers decide what to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from enum import IntEnum, auto
from pathlib import Path

import psycopg2
import psycopg2.errors
from psycopg2.extensions import cursor as Cursor

__all__ = ["counts", "is_seeded", "seed", "tick"]

PRODUCT_COUNT = 200
"""The catalogue is fixed-size, so product ids are always 1..PRODUCT_COUNT."""

TICK_NEW_ORDERS = 25
TICK_UPDATED_ORDERS = 10
TICK_HARD_DELETED_ORDERS = 2

_SCHEMA_FILE = Path(__file__).with_name("shop_schema.sql")
_POST_LOAD_MARKER = "-- @post-load"
_TABLES = ("customers", "products", "orders", "order_items")
_APPLICATION_NAME = "elt-demo-shop"

_COUNTRIES = ("DE", "DE", "DE", "FR", "FR", "NL", "NL", "BE", "ES", "IT", "AT", "PL", "SE", "IE")
_CATEGORIES = ("books", "electronics", "home", "garden", "toys", "sports", "beauty", "grocery")
_ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Essential", "Premium", "Smart", "Vintage")
_NOUNS = ("Bundle", "Kit", "Set", "Pack", "Edition", "Collection", "Box", "Series")
_FIRST_NAMES = (
    "Anna", "Ben", "Chloe", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas",
    "Klara", "Lucas", "Marie", "Noah", "Olivia", "Paul", "Rosa", "Sven", "Tess", "Victor",
)  # fmt: skip
_LAST_NAMES = (
    "Andersson", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hofer",
    "Janssens", "Kowalski", "Leroy", "Martin", "Novak", "Otten", "Peeters", "Rossi",
    "Schmidt", "Visser", "Walsh", "Zimmermann",
)  # fmt: skip


class _Salt(IntEnum):
    """One hash salt per generated attribute, so that attributes are mutually independent.

    Seeding uses the values as they are; tick offsets them by its step (see _tick_salt).
    """

    CUSTOMER_FIRST = auto()
    CUSTOMER_LAST = auto()
    COUNTRY = auto()
    SIGNUP = auto()
    PROFILE = auto()
    ADJECTIVE = auto()
    NOUN = auto()
    PRICE = auto()
    ACTIVE = auto()
    LISTED = auto()
    BUYER = auto()
    ORDER_TIME = auto()
    STATUS = auto()
    SHIPPING = auto()
    BASKET = auto()
    LINES = auto()
    QUANTITY = auto()
    DISCOUNT = auto()
    TICK_ORDERS = auto()
    TICK_CUSTOMER = auto()
    TICK_SOFT_DELETE = auto()
    TICK_HARD_DELETE = auto()


_SALTS_PER_TICK = 64  # > every _Salt value


def _rand(expr: str, salt: int) -> str:
    """SQL for a pseudo-random integer in [0, 2**32), a pure function of ``expr`` and ``salt``.

    A Knuth multiplicative hash followed by two xorshift-multiply rounds (the well-known
    0x45d9f3b integer hash): plain ``(i * 2654435761) % m`` is a linear sequence in ``i`` and
    shows visible stripes. Every intermediate stays below 2**63, so bigint never overflows.
    ``mod()`` rather than ``%`` keeps the text safe for psycopg2 parameter interpolation.
    """
    offset = salt * 2246822519 % 2**32
    x = f"mod(mod(({expr})::bigint, 4294967296) * 2654435761 + {offset}, 4294967296)"
    for _ in range(2):
        x = f"mod(((({x}) >> 16) # ({x})) * 73244475, 4294967296)"
    return f"((({x}) >> 16) # ({x}))"


def _text_array(options: tuple[str, ...]) -> str:
    """SQL array literal of the (quote-free, module-constant) ``options``."""
    return "array[" + ", ".join(f"'{option}'" for option in options) + "]"


def _pick(options: tuple[str, ...], expr: str, salt: int) -> str:
    """SQL choosing one of ``options`` pseudo-randomly from ``expr``."""
    return f"({_text_array(options)})[1 + mod({_rand(expr, salt)}, {len(options)})]"


def _customer_identity(id_expr: str, first_salt: int, last_salt: int) -> tuple[str, str]:
    """SQL for (full_name, email) of a customer; shared by seeding and by tick's profile edits.

    The customer id in the e-mail keeps it unique whatever the name.
    """
    first = _pick(_FIRST_NAMES, id_expr, first_salt)
    last = _pick(_LAST_NAMES, id_expr, last_salt)
    full_name = f"{first} || ' ' || {last}"
    email = f"lower({first} || '.' || {last}) || '.' || ({id_expr}) || '@example.com'"
    return full_name, email


_FULL_NAME, _EMAIL = _customer_identity("g.customer_id", _Salt.CUSTOMER_FIRST, _Salt.CUSTOMER_LAST)

# Customers signed up 1-2 years ago (so before any of their orders) and edited their
# profile at most 30 days later; both are therefore in the past.
_INSERT_CUSTOMERS = f"""
insert into customers (customer_id, email, full_name, country_code, created_at, updated_at)
select customer_id, email, full_name, country_code, created_at,
       created_at + make_interval(secs => mod(profile_hash, 30 * 86400))
from (
    select g.customer_id,
           {_EMAIL} as email,
           {_FULL_NAME} as full_name,
           {_pick(_COUNTRIES, "g.customer_id", _Salt.COUNTRY)} as country_code,
           now() - interval '365 days'
               - make_interval(secs => mod({_rand("g.customer_id", _Salt.SIGNUP)}, 365 * 86400))
               as created_at,
           {_rand("g.customer_id", _Salt.PROFILE)} as profile_hash
    from generate_series(1, %(customers)s::bigint) as g (customer_id)
    offset 0  -- optimisation fence: each hash once per row, not per reference
) as c
"""

_PRODUCT_CATEGORY = f"({_text_array(_CATEGORIES)})[1 + mod(g.product_id - 1, {len(_CATEGORIES)})]"
_INSERT_PRODUCTS = f"""
insert into products (product_id, sku, product_name, category, unit_price, is_active,
                      created_at, updated_at)
select product_id, 'SKU-' || lpad(product_id::text, 5, '0'), product_name, category,
       unit_price, is_active, created_at,
       created_at + make_interval(days => mod({_rand("product_id", _Salt.LISTED)}, 100)::integer)
from (
    select g.product_id,
           {_pick(_ADJECTIVES, "g.product_id", _Salt.ADJECTIVE)} || ' '
               || initcap({_PRODUCT_CATEGORY}) || ' '
               || {_pick(_NOUNS, "g.product_id", _Salt.NOUN)} as product_name,
           {_PRODUCT_CATEGORY} as category,
           (2 + mod({_rand("g.product_id", _Salt.PRICE)}, 250)) - 0.01 as unit_price,
           mod({_rand("g.product_id", _Salt.ACTIVE)}, 20) <> 0 as is_active,
           now() - interval '800 days' + make_interval(hours => g.product_id::integer)
               as created_at
    from generate_series(1, %(products)s::bigint) as g (product_id)
) as p
"""

# Orders first_id..last_id are spread evenly over the `span_seconds` before now(), ids
# increasing with time (span 0: all placed right now). Status follows the order's age via
# per-order transition delays, and updated_at is the time of the last transition, so it is
# never in the future.
_INSERT_ORDERS = f"""
insert into orders (order_id, customer_id, status, ordered_at, shipping_amount,
                    created_at, updated_at)
select order_id, customer_id, status, ordered_at, shipping_amount, ordered_at,
       ordered_at + case status
           when 'paid' then paid_after
           when 'shipped' then shipped_after
           when 'delivered' then delivered_after
           when 'cancelled' then cancelled_after
           else interval '0'
       end
from (
    select b.*,
           now() - age as ordered_at,
           case
               when roll < 4 and age >= cancelled_after then 'cancelled'
               when age >= delivered_after then 'delivered'
               when age >= shipped_after then 'shipped'
               when age >= paid_after then 'paid'
               else 'placed'
           end as status
    from (
        select r.*,
               make_interval(mins => 10 + roll) as paid_after,
               make_interval(days => 1 + mod(roll, 2)) as shipped_after,
               make_interval(days => 3 + mod(roll, 5)) as delivered_after,
               make_interval(hours => 1 + roll) as cancelled_after
        from (
            select g.order_id,
                   1 + mod({_rand("g.order_id", _Salt.BUYER)}, %(customers)s) as customer_id,
                   make_interval(secs => floor(
                       (%(last_id)s - g.order_id
                        + mod({_rand("g.order_id", _Salt.ORDER_TIME)}, 1000) / 1000.0)
                       * %(span_seconds)s / (%(last_id)s - %(first_id)s + 1)
                   )::double precision) as age,
                   mod({_rand("g.order_id", _Salt.STATUS)}, 100)::integer as roll,
                   (array[0, 0, 0, 4.95, 4.95, 4.95, 4.95, 4.95, 9.95, 9.95])[
                       1 + mod({_rand("g.order_id", _Salt.SHIPPING)}, 10)] as shipping_amount
            from generate_series(%(first_id)s::bigint, %(last_id)s::bigint) as g (order_id)
            offset 0  -- optimisation fence: each hash once per row, not per reference
        ) as r
    ) as b
) as o
"""

# 1-4 lines per order, all from the order id; line n of order k has id (k - 1) * 4 + n,
# so ids need no sequence and are stable. Products within an order are distinct
# (37 is coprime to the catalogue size), prices are the catalogue price.
_ITEM_ID = "(o.order_id - 1) * 4 + line"
_INSERT_ORDER_ITEMS = f"""
insert into order_items (order_item_id, order_id, product_id, quantity, unit_price,
                         discount_amount, created_at, updated_at)
select i.order_item_id, i.order_id, p.product_id, i.quantity, p.unit_price,
       case when i.discounted then round(p.unit_price * i.quantity * 0.10, 2) else 0 end,
       i.created_at, i.created_at
from (
    select {_ITEM_ID} as order_item_id,
           o.order_id,
           o.created_at,
           1 + mod(o.basket + 37 * line, %(products)s) as product_id,
           (array[1, 1, 1, 1, 1, 1, 1, 2, 2, 3])[1 + mod({_rand(_ITEM_ID, _Salt.QUANTITY)}, 10)]
               as quantity,
           mod({_rand(_ITEM_ID, _Salt.DISCOUNT)}, 10) = 0 as discounted
    from (
        select order_id,
               created_at,
               {_rand("order_id", _Salt.BASKET)} as basket,
               1 + mod({_rand("order_id", _Salt.LINES)}, 4) as lines
        from orders
        where order_id between %(first_id)s and %(last_id)s
        offset 0  -- optimisation fence: per-order hashes once per order, not per line
    ) as o
    cross join generate_series(1, 4) as line
    where line <= o.lines
    offset 0  -- optimisation fence: per-line hashes once per line, not per reference
) as i
join products as p on p.product_id = i.product_id
"""


@contextmanager
def _transaction(dsn: str) -> Iterator[Cursor]:
    """One connection and one transaction: committed on success, rolled back on error."""
    connect = psycopg2.connect(dsn, application_name=_APPLICATION_NAME)
    # closing() closes the connection; `with conn` only ends the transaction.
    with closing(connect) as conn, conn, conn.cursor() as cur:
        yield cur


def _schema_sql() -> tuple[str, str]:
    """shop_schema.sql split into (tables and triggers, post-load constraints and indexes)."""
    tables, marker, indexes = _SCHEMA_FILE.read_text(encoding="utf-8").partition(_POST_LOAD_MARKER)
    if not marker:
        raise RuntimeError(f"{_SCHEMA_FILE.name} lacks the {_POST_LOAD_MARKER!r} marker")
    return tables, indexes


def _insert_orders(
    cur: Cursor, first_id: int, last_id: int, *, customers: int, span_seconds: int
) -> tuple[int, int]:
    """Insert orders first_id..last_id and their items; returns (orders, items) inserted."""
    params = {
        "first_id": first_id,
        "last_id": last_id,
        "customers": customers,
        "span_seconds": span_seconds,
        "products": PRODUCT_COUNT,
    }
    cur.execute(_INSERT_ORDERS, params)
    orders = cur.rowcount
    cur.execute(_INSERT_ORDER_ITEMS, params)
    return orders, cur.rowcount


def counts(dsn: str) -> dict[str, int]:
    """Rows per shop table; raises psycopg2.errors.UndefinedTable before the first seed."""
    with _transaction(dsn) as cur:
        cur.execute(" union all ".join(f"select count(*) from {table}" for table in _TABLES))
        return {table: row[0] for table, row in zip(_TABLES, cur.fetchall(), strict=True)}


def is_seeded(dsn: str) -> bool:
    """True when the shop tables exist and hold orders."""
    try:
        return counts(dsn)["orders"] > 0
    except psycopg2.errors.UndefinedTable:
        return False


def seed(dsn: str, orders: int = 10_000, *, reset: bool = True) -> dict[str, int]:
    """Create the shop schema and fill it with ``orders`` orders of deterministic data.

    With ``reset`` the tables are dropped first; without it missing objects are created
    and the tables must be empty (ValueError otherwise), so nothing is ever half-mixed.
    Runs in one transaction. Returns the row count per table.
    """
    if orders < 1:
        raise ValueError(f"orders must be at least 1, got {orders}")
    customers = max(50, orders // 5)
    tables_sql, indexes_sql = _schema_sql()
    with _transaction(dsn) as cur:
        cur.execute("set local maintenance_work_mem = '256MB'")  # faster index builds
        if reset:
            cur.execute(f"drop table if exists {', '.join(reversed(_TABLES))} cascade")
        cur.execute(tables_sql)
        if not reset:
            cur.execute("select " + " or ".join(f"exists (select from {t})" for t in _TABLES))
            if cur.fetchone()[0]:
                raise ValueError("the shop tables already contain data; seed with reset=True")
        cur.execute(_INSERT_CUSTOMERS, {"customers": customers})
        counts = {"customers": cur.rowcount}
        cur.execute(_INSERT_PRODUCTS, {"products": PRODUCT_COUNT})
        counts["products"] = cur.rowcount
        counts["orders"], counts["order_items"] = _insert_orders(
            cur, 1, orders, customers=customers, span_seconds=365 * 86400
        )
        cur.execute(indexes_sql)
        cur.execute(f"analyze {', '.join(_TABLES)}")
    return counts


def _tick_salt(step: int, salt: _Salt) -> int:
    """A hash salt unique to (step, salt) and distinct from every seed salt."""
    return (step + 1) * _SALTS_PER_TICK + salt


def tick(
    dsn: str,
    *,
    step: int | None = None,
    hard_deletes: int = 0,
    new_orders: int = TICK_NEW_ORDERS,
    updated_orders: int = TICK_UPDATED_ORDERS,
) -> dict[str, int]:
    """Simulate a burst of shop activity, in one transaction, for incremental loads to pick up.

    Inserts new orders (with items) for existing customers, advances the status of some
    open orders, edits one customer's profile, soft-deletes one order and hard-deletes
    (`delete from`, as most applications do) `hard_deletes` older orders with their items
    (`elt demo --tick`: TICK_HARD_DELETED_ORDERS). `new_orders` and `updated_orders` size
    the burst (bench/transform_delta.py makes it 1% of the orders). Updates never
    set updated_at: the trigger does, exactly as for a real application. Which rows change
    depends on ``step``, which defaults to the current highest order id, so repeated ticks
    touch different rows and the same database state plus step gives the same changes.
    """
    if step is not None and step < 0:
        raise ValueError(f"step must not be negative, got {step}")
    if new_orders < 0 or updated_orders < 0:
        raise ValueError("new_orders and updated_orders must not be negative")
    with _transaction(dsn) as cur:
        cur.execute(
            "select (select max(order_id) from orders), (select max(customer_id) from customers)"
        )
        last_order, last_customer = cur.fetchone()
        if not last_customer:
            raise ValueError("the shop database has no customers; seed it first")
        last_order = last_order or 0
        if step is None:
            step = last_order

        inserted_orders, inserted_items = _insert_orders(
            cur,
            last_order + 1,
            last_order + new_orders,
            customers=last_customer,
            span_seconds=0,
        )

        order_salt = _tick_salt(step, _Salt.TICK_ORDERS)
        cur.execute(
            f"""
            update orders
            set status = case status
                when 'placed' then 'paid' when 'paid' then 'shipped' else 'delivered'
            end
            where order_id in (
                select order_id from orders
                where status in ('placed', 'paid', 'shipped')
                  and deleted_at is null
                  and order_id <= %(last_order)s
                order by {_rand("order_id", order_salt)}
                limit %(limit)s
            )
            """,
            {"last_order": last_order, "limit": updated_orders},
        )
        updated_orders = cur.rowcount

        full_name, email = _customer_identity(
            "customer_id",
            _tick_salt(step, _Salt.CUSTOMER_FIRST),
            _tick_salt(step, _Salt.CUSTOMER_LAST),
        )
        chosen = _rand("0", _tick_salt(step, _Salt.TICK_CUSTOMER))
        cur.execute(
            f"""
            update customers set full_name = {full_name}, email = {email}
            where customer_id = 1 + mod({chosen}, %(last_customer)s)
            """,
            {"last_customer": last_customer},
        )
        updated_customers = cur.rowcount

        # The first live order at or after a pseudo-random pivot (wrapping around): two
        # index range scans instead of sorting the whole table.
        pivot = _rand("0", _tick_salt(step, _Salt.TICK_SOFT_DELETE))
        cur.execute(
            f"""
            update orders set deleted_at = now()
            where order_id = coalesce(
                (select min(order_id) from orders
                 where deleted_at is null
                   and order_id between 1 + mod({pivot}, greatest(%(last_order)s, 1))
                                    and %(last_order)s),
                (select min(order_id) from orders
                 where deleted_at is null and order_id <= %(last_order)s)
            )
            """,
            {"last_order": last_order},
        )
        soft_deleted = cur.rowcount

        # Hard deletes: orders placed before this tick and untouched by it, so that every
        # row the tick changes is still there; their items go with them (the payment
        # provider keeps its payments, as a real one would).
        cur.execute(
            f"""
            create temporary table tick_hard_deleted on commit drop as
            select order_id from orders
            where order_id <= %(last_order)s
              and updated_at < now()
            order by {_rand("order_id", _tick_salt(step, _Salt.TICK_HARD_DELETE))}
            limit %(limit)s
            """,
            {"last_order": last_order, "limit": hard_deletes},
        )
        cur.execute(
            "delete from order_items where order_id in (select order_id from tick_hard_deleted)"
        )
        hard_deleted_items = cur.rowcount
        cur.execute("delete from orders where order_id in (select order_id from tick_hard_deleted)")
        hard_deleted = cur.rowcount

    return {
        "orders_inserted": inserted_orders,
        "order_items_inserted": inserted_items,
        "orders_updated": updated_orders,
        "customers_updated": updated_customers,
        "orders_soft_deleted": soft_deleted,
        "orders_hard_deleted": hard_deleted,
        "order_items_hard_deleted": hard_deleted_items,
    }
