{{ config(indexes=elt_lookup_indexes(['order_item_id'])) }}

with

-- on an incremental run, only the items whose inputs changed (macros/incremental_marts.sql)
order_items as (

    select * from {{ ref('stg_shop__order_items') }}
    where {{ elt_changed_keys_filter('order_item_id') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

live_order_items as (

    select
        *,
        quantity * unit_price as gross_amount

    from order_items
    where not is_deleted

),

live_orders as (

    select * from orders
    where not is_deleted

),

final as (

    select
        live_order_items.order_item_id,
        live_order_items.order_id,
        live_order_items.product_id,
        live_orders.customer_id,
        live_orders.order_status,
        live_orders.ordered_at,
        {{ dbt.cast(dbt.date_trunc('day', 'live_orders.ordered_at'), 'date') }} as order_date,
        live_orders.currency,
        live_order_items.quantity,
        live_order_items.unit_price,
        {{ dbt.cast('live_order_items.gross_amount', dbt.type_numeric()) }} as gross_amount,
        live_order_items.discount_amount,
        {{ dbt.cast(
            'live_order_items.gross_amount - live_order_items.discount_amount',
            dbt.type_numeric()
        ) }} as line_amount,
        live_order_items.created_at,
        live_order_items.updated_at,
        live_order_items.dlt_load_id,
        live_order_items.extracted_at

    from live_order_items
    inner join live_orders
        on live_order_items.order_id = live_orders.order_id

)

select * from final
