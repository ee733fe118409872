-- The demo payment provider's own tables, in schema payments_api of the demo shop database;
-- see demo/payments.py (data) and demo/payments_api.py (the HTTP API serving them).
-- A payment provider is a separate system: no foreign keys into the shop's tables.
-- updated_at is owned by the database, as in the shop: the trigger stamps every update.
-- Needs the shop schema first (its trigger function); the data derives from its orders.
-- Amounts are integers in minor currency units (cents), as payment APIs send them.

create schema if not exists payments_api;

create sequence if not exists payments_api.payment_number;
create sequence if not exists payments_api.refund_number;

create table if not exists payments_api.payments (
    payment_id text primary key
        default 'pay_' || lpad(nextval('payments_api.payment_number')::text, 10, '0'),
    order_id bigint not null,
    amount bigint not null check (amount >= 0),
    currency char(3) not null,
    payment_method text not null,
    status text not null check (status in ('pending', 'succeeded', 'failed')),
    created_at timestamptz not null,
    updated_at timestamptz not null default now()
);

create table if not exists payments_api.refunds (
    refund_id text primary key
        default 're_' || lpad(nextval('payments_api.refund_number')::text, 10, '0'),
    payment_id text not null references payments_api.payments (payment_id),
    order_id bigint not null,
    amount bigint not null check (amount >= 0),
    currency char(3) not null,
    reason text not null,
    status text not null check (status in ('pending', 'succeeded')),
    created_at timestamptz not null,
    updated_at timestamptz not null default now()
);

-- the shop's trigger function (shop_schema.sql): the same now() stamping
create or replace trigger payments_set_updated_at before update on payments_api.payments
    for each row execute function public.shop_set_updated_at();
create or replace trigger refunds_set_updated_at before update on payments_api.refunds
    for each row execute function public.shop_set_updated_at();

-- the API pages in (updated_at, id) order and filters on updated_at
create index if not exists payments_updated_at_idx on payments_api.payments (updated_at, payment_id);
create index if not exists refunds_updated_at_idx on payments_api.refunds (updated_at, refund_id);
create index if not exists payments_order_id_idx on payments_api.payments (order_id);
create index if not exists refunds_payment_id_idx on payments_api.refunds (payment_id);
