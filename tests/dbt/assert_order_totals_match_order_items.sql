-- fct_orders' item amounts must equal the sum of its lines in fct_order_items: the two
-- facts are built from the same items by different paths. Returns the orders that differ.
-- After an incremental build, only the orders it rebuilt (a changed item or order puts its
-- order among them; macros/incremental_marts.sql): the others passed before.
with

orders as (

    select * from {{ ref('fct_orders') }}
    where {{ elt_rebuilt_rows_filter(ref('fct_orders'), 'order_id') }}

),

order_items as (

    select * from {{ ref('fct_order_items') }}
    where {{ elt_rebuilt_rows_filter(ref('fct_orders'), 'order_id') }}

),

order_lines as (

    select
        order_id,
        count(*) as item_count,
        sum(line_amount) as lines_total

    from order_items
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.item_count,
        coalesce(order_lines.item_count, 0) as line_count,
        orders.items_subtotal - orders.discount_total as order_items_total,
        coalesce(order_lines.lines_total, 0) as lines_total

    from orders
    left join order_lines
        on orders.order_id = order_lines.order_id
    where
        orders.item_count <> coalesce(order_lines.item_count, 0)
        or orders.items_subtotal - orders.discount_total
        <> coalesce(order_lines.lines_total, 0)

)

select * from final
