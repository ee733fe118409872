{{ config(indexes=elt_lookup_indexes(['order_id'], load_id=true)) }}

with

source_orders as (

    {{ dedupe_completed_loads(
        source('shop', 'orders'),
        source('shop', '_dlt_loads'),
        tiebreak=existing_columns(source('shop', 'orders'), ['_elt_lsn']),
        key='order_id',
        where=incremental_lookback_filter('updated_at')
    ) }}

),

final as (

    select
        {{ dbt.cast('order_id', dbt.type_bigint()) }} as order_id,
        {{ dbt.cast('customer_id', dbt.type_bigint()) }} as customer_id,
        {{ dbt.cast('lower(status)', dbt.type_string()) }} as order_status,
        {{ dbt.cast('ordered_at', type_timestamp_tz()) }} as ordered_at,
        {{ dbt.cast('upper(currency)', dbt.type_string()) }} as currency,
        {{ dbt.cast('shipping_amount', dbt.type_numeric()) }} as shipping_amount,
        {{ staging_lifecycle_columns(source('shop', 'orders')) }}

    from source_orders

)

select * from final
