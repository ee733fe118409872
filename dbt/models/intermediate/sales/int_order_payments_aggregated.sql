with

payments as (

    select * from {{ ref('stg_payments__payments') }}

),

refunds as (

    select * from {{ ref('stg_payments__refunds') }}

),

payments_per_order as (

    select
        order_id,
        count(*) as payment_count,
        sum(case when payment_status = 'succeeded' then amount else 0 end) as amount_paid

    from payments
    group by order_id

),

refunds_per_order as (

    select
        order_id,
        sum(amount) as amount_refunded

    from refunds
    where refund_status = 'succeeded'
    group by order_id

),

final as (

    select
        payments_per_order.order_id,
        payments_per_order.payment_count,
        {{ dbt.cast('payments_per_order.amount_paid', dbt.type_numeric()) }} as amount_paid,
        {{ dbt.cast(
            'coalesce(refunds_per_order.amount_refunded, 0)', dbt.type_numeric()
        ) }} as amount_refunded

    from payments_per_order
    left join refunds_per_order
        on payments_per_order.order_id = refunds_per_order.order_id

)

select * from final
