with

orders as (

    select * from {{ ref('fct_orders') }}

),

revenue_orders as (

    select * from orders
    where not is_cancelled

),

final as (

    select
        order_date,
        count(*) as order_count,
        count(distinct customer_id) as customer_count,
        sum(items_quantity) as items_quantity,
        sum(items_subtotal) as items_subtotal,
        sum(discount_total) as discount_total,
        sum(shipping_amount) as shipping_revenue,
        sum(order_total) as gross_revenue,
        {{ dbt.cast('sum(amount_refunded)', dbt.type_numeric()) }} as refunded_amount,
        {{ dbt.cast('sum(order_total) - sum(amount_refunded)', dbt.type_numeric()) }}
            as net_revenue

    from revenue_orders
    group by order_date

)

select * from final
