with

source_web_sessions as (

    {{ dedupe_completed_loads(
        source('marketing', 'web_sessions'),
        source('marketing', '_dlt_loads'),
        key='session_id',
        cursor='_elt_file_modified_at'
    ) }}

),

final as (

    select
        {{ dbt.cast('session_id', dbt.type_string()) }} as session_id,
        {{ dbt.cast('started_at', type_timestamp_tz()) }} as started_at,
        {{ dbt.cast(dbt.date_trunc('day', 'started_at'), 'date') }} as session_date,
        {{ dbt.cast('lower(channel)', dbt.type_string()) }} as channel,
        {{ dbt.cast('campaign_id', dbt.type_string()) }} as campaign_id,
        {{ dbt.cast('landing_page', dbt.type_string()) }} as landing_page,
        {{ dbt.cast('device', dbt.type_string()) }} as device,
        {{ dbt.cast('pageviews', dbt.type_bigint()) }} as pageviews,
        {{ dbt.cast('customer_id', dbt.type_bigint()) }} as customer_id,
        {{ dbt.cast('order_id', dbt.type_bigint()) }} as order_id,
        order_id is not null as has_order,
        {{ file_lineage_columns() }}

    from source_web_sessions

)

select * from final
