with

payments as (

    select * from {{ ref('stg_payments__payments') }}

),

refunds as (

    select * from {{ ref('stg_payments__refunds') }}

),

-- one stream of money movements, aggregated once: no join of two aggregates, whose
-- row estimates (rows = 1 behind the dedupe) lead the planner into a nested loop
money_movements as (

    select
        order_id,
        1 as payment_count,
        case when payment_status = 'succeeded' then amount else 0 end as amount_paid,
        0 as amount_refunded

    from payments

    union all

    select
        order_id,
        0 as payment_count,
        0 as amount_paid,
        amount as amount_refunded

    from refunds
    where refund_status = 'succeeded'

),

final as (

    select
        order_id,
        sum(payment_count) as payment_count,
        {{ dbt.cast('sum(amount_paid)', dbt.type_numeric()) }} as amount_paid,
        {{ dbt.cast('sum(amount_refunded)', dbt.type_numeric()) }} as amount_refunded

    from money_movements
    group by order_id

)

select * from final
