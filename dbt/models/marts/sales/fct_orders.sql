{{ config(indexes=elt_lookup_indexes(['order_id'])) }}

with

-- on an incremental run, only the orders whose inputs changed (macros/incremental_marts.sql)
orders as (

    select * from {{ ref('stg_shop__orders') }}
    where {{ elt_changed_keys_filter('order_id') }}

),

-- the aggregates of the changed orders alone, looked up order by order
order_items_aggregated as (

    {{ elt_changed_keys_rows(ref('int_order_items_aggregated'), 'order_id') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

order_payments_aggregated as (

    {{ elt_changed_keys_rows(ref('int_order_payments_aggregated'), 'order_id') }}

),

live_orders as (

    select * from orders
    where not is_deleted

),

orders_with_items as (

    select
        live_orders.order_id,
        live_orders.customer_id,
        live_orders.order_status,
        live_orders.ordered_at,
        live_orders.currency,
        live_orders.shipping_amount,
        live_orders.created_at,
        live_orders.updated_at,
        live_orders.dlt_load_id,
        live_orders.extracted_at,
        coalesce(order_items_aggregated.item_count, 0) as item_count,
        coalesce(order_items_aggregated.items_quantity, 0) as items_quantity,
        coalesce(order_items_aggregated.items_subtotal, 0) as items_subtotal,
        coalesce(order_items_aggregated.discount_total, 0) as discount_total,
        coalesce(order_payments_aggregated.amount_paid, 0) as amount_paid,
        coalesce(order_payments_aggregated.amount_refunded, 0) as amount_refunded

    from live_orders
    left join order_items_aggregated
        on live_orders.order_id = order_items_aggregated.order_id
    left join order_payments_aggregated
        on live_orders.order_id = order_payments_aggregated.order_id

),

orders_with_totals as (

    select
        *,
        items_subtotal - discount_total + shipping_amount as order_total,
        case
            when amount_paid = 0 then 'unpaid'
            when amount_refunded >= amount_paid then 'refunded'
            when amount_refunded > 0 then 'partially_refunded'
            else 'paid'
        end as payment_status

    from orders_with_items

),

final as (

    select
        orders_with_totals.order_id,
        orders_with_totals.customer_id,
        customers.country_code as customer_country_code,
        customers.region as customer_region,
        orders_with_totals.order_status,
        orders_with_totals.order_status = 'cancelled' as is_cancelled,
        orders_with_totals.ordered_at,
        {{ dbt.cast(dbt.date_trunc('day', 'orders_with_totals.ordered_at'), 'date') }}
            as order_date,
        orders_with_totals.currency,
        orders_with_totals.item_count,
        orders_with_totals.items_quantity,
        {{ dbt.cast('orders_with_totals.items_subtotal', dbt.type_numeric()) }} as items_subtotal,
        {{ dbt.cast('orders_with_totals.discount_total', dbt.type_numeric()) }} as discount_total,
        {{ dbt.cast('orders_with_totals.shipping_amount', dbt.type_numeric()) }} as shipping_amount,
        {{ dbt.cast('orders_with_totals.order_total', dbt.type_numeric()) }} as order_total,
        orders_with_totals.payment_status,
        {{ dbt.cast('orders_with_totals.amount_paid', dbt.type_numeric()) }} as amount_paid,
        {{ dbt.cast('orders_with_totals.amount_refunded', dbt.type_numeric()) }} as amount_refunded,
        orders_with_totals.created_at,
        orders_with_totals.updated_at,
        orders_with_totals.dlt_load_id,
        orders_with_totals.extracted_at

    from orders_with_totals
    left join customers
        on orders_with_totals.customer_id = customers.customer_id

)

select * from final
