-- Demo shop (source application) schema; see demo/shop.py.
-- Idempotent: every statement may run against an existing schema. demo/shop.py runs the
-- part above the post-load marker, loads data, then runs the rest (foreign keys, indexes).
-- updated_at is owned by the database: default now() on insert, and the trigger below
-- stamps now() (the transaction start time, on purpose) on every update, soft deletes included.

create table if not exists customers (
    customer_id bigint primary key,
    email text not null unique,
    full_name text not null,
    country_code char(2) not null,
    created_at timestamptz not null,
    updated_at timestamptz not null default now(),
    deleted_at timestamptz null
);

create table if not exists products (
    product_id bigint primary key,
    sku text not null unique,
    product_name text not null,
    category text not null,
    unit_price numeric(12, 2) not null,
    is_active boolean not null,
    created_at timestamptz not null,
    updated_at timestamptz not null default now(),
    deleted_at timestamptz null
);

create table if not exists orders (
    order_id bigint primary key,
    customer_id bigint not null,
    status text not null
        check (status in ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    ordered_at timestamptz not null,
    currency char(3) not null default 'EUR',
    shipping_amount numeric(12, 2) not null,
    created_at timestamptz not null,
    updated_at timestamptz not null default now(),
    deleted_at timestamptz null
);

create table if not exists order_items (
    order_item_id bigint primary key,
    order_id bigint not null,
    product_id bigint not null,
    quantity integer not null check (quantity > 0),
    unit_price numeric(12, 2) not null,
    discount_amount numeric(12, 2) not null default 0,
    created_at timestamptz not null,
    updated_at timestamptz not null default now(),
    deleted_at timestamptz null
);

create or replace function shop_set_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

create or replace trigger customers_set_updated_at before update on customers
    for each row execute function shop_set_updated_at();
create or replace trigger products_set_updated_at before update on products
    for each row execute function shop_set_updated_at();
create or replace trigger orders_set_updated_at before update on orders
    for each row execute function shop_set_updated_at();
create or replace trigger order_items_set_updated_at before update on order_items
    for each row execute function shop_set_updated_at();

-- @post-load
-- Foreign keys and secondary indexes: added after the bulk load of a seed, because one
-- set-based validation or index build is several times faster than row-by-row checks
-- and maintenance (a million-order seed spends most of its time in FK checks otherwise).
-- Dropping and re-adding the constraints keeps this section re-runnable.

alter table orders
    drop constraint if exists orders_customer_id_fkey,
    add constraint orders_customer_id_fkey
        foreign key (customer_id) references customers (customer_id);
alter table order_items
    drop constraint if exists order_items_order_id_fkey,
    -- an order's items go with it: `delete from orders where ...` works as in most shops
    add constraint order_items_order_id_fkey
        foreign key (order_id) references orders (order_id) on delete cascade,
    drop constraint if exists order_items_product_id_fkey,
    add constraint order_items_product_id_fkey
        foreign key (product_id) references products (product_id);

-- updated_at drives the incremental loader; the others back the foreign keys for joins.

create index if not exists customers_updated_at_idx on customers (updated_at);
create index if not exists products_updated_at_idx on products (updated_at);
create index if not exists orders_updated_at_idx on orders (updated_at);
create index if not exists order_items_updated_at_idx on order_items (updated_at);
create index if not exists orders_customer_id_idx on orders (customer_id);
create index if not exists order_items_order_id_idx on order_items (order_id);
