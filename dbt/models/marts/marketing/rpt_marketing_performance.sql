with

ad_spend as (

    select * from {{ ref('stg_marketing__ad_spend') }}

),

web_sessions as (

    select * from {{ ref('stg_marketing__web_sessions') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

spend_by_day as (

    select
        spend_date as report_date,
        channel,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks

    from ad_spend
    group by spend_date, channel

),

sessions_by_day as (

    select
        session_date as report_date,
        channel,
        count(*) as sessions,
        sum(case when has_order then 1 else 0 end) as converting_sessions

    from web_sessions
    group by session_date, channel

),

-- an order counts once, for the channel of the last session that carries its order_id
order_sessions as (

    select
        order_id,
        channel,
        row_number() over (
            partition by order_id
            order by started_at desc, session_id desc
        ) as session_rank

    from web_sessions
    where order_id is not null

),

attributed_orders as (

    select
        orders.order_date as report_date,
        order_sessions.channel,
        orders.order_total

    from orders
    inner join order_sessions
        on orders.order_id = order_sessions.order_id
    where
        order_sessions.session_rank = 1
        and not orders.is_cancelled

),

orders_by_day as (

    select
        report_date,
        channel,
        count(*) as orders,
        sum(order_total) as revenue

    from attributed_orders
    group by report_date, channel

),

report_days as (

    select
        report_date,
        channel
    from spend_by_day
    union
    select
        report_date,
        channel
    from sessions_by_day
    union
    select
        report_date,
        channel
    from orders_by_day

),

final as (

    select
        report_days.report_date,
        report_days.channel,
        {{ dbt.cast('coalesce(spend_by_day.spend, 0)', dbt.type_numeric()) }} as spend,
        coalesce(spend_by_day.impressions, 0) as impressions,
        coalesce(spend_by_day.clicks, 0) as clicks,
        coalesce(sessions_by_day.sessions, 0) as sessions,
        coalesce(sessions_by_day.converting_sessions, 0) as converting_sessions,
        coalesce(orders_by_day.orders, 0) as orders,
        {{ dbt.cast('coalesce(orders_by_day.revenue, 0)', dbt.type_numeric()) }} as revenue,
        case
            when orders_by_day.orders > 0
                then {{ divide_rounded(
                    'coalesce(spend_by_day.spend, 0)', 'orders_by_day.orders', 2
                ) }}
        end as cost_per_order,
        case
            when spend_by_day.spend > 0
                then {{ divide_rounded(
                    'coalesce(orders_by_day.revenue, 0)', 'spend_by_day.spend', 4
                ) }}
        end as return_on_ad_spend

    from report_days
    left join spend_by_day
        on
            report_days.report_date = spend_by_day.report_date
            and report_days.channel = spend_by_day.channel
    left join sessions_by_day
        on
            report_days.report_date = sessions_by_day.report_date
            and report_days.channel = sessions_by_day.channel
    left join orders_by_day
        on
            report_days.report_date = orders_by_day.report_date
            and report_days.channel = orders_by_day.channel

)

select * from final
