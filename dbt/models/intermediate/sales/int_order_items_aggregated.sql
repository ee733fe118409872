with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

live_order_items as (

    select * from order_items
    where not is_deleted

),

final as (

    select
        order_id,
        count(*) as item_count,
        sum(quantity) as items_quantity,
        {{ dbt.cast('sum(quantity * unit_price)', dbt.type_numeric()) }} as items_subtotal,
        {{ dbt.cast('sum(discount_amount)', dbt.type_numeric()) }} as discount_total

    from live_order_items
    group by order_id

)

select * from final
