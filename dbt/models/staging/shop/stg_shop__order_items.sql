{{ config(indexes=elt_lookup_indexes(['order_item_id', 'order_id'], load_id=true)) }}

with

source_order_items as (

    {{ dedupe_completed_loads(
        source('shop', 'order_items'),
        source('shop', '_dlt_loads'),
        tiebreak=existing_columns(source('shop', 'order_items'), ['_elt_lsn']),
        key='order_item_id',
        where=incremental_lookback_filter('updated_at')
    ) }}

),

final as (

    select
        {{ dbt.cast('order_item_id', dbt.type_bigint()) }} as order_item_id,
        {{ dbt.cast('order_id', dbt.type_bigint()) }} as order_id,
        {{ dbt.cast('product_id', dbt.type_bigint()) }} as product_id,
        {{ dbt.cast('quantity', dbt.type_int()) }} as quantity,
        {{ dbt.cast('unit_price', dbt.type_numeric()) }} as unit_price,
        {{ dbt.cast('discount_amount', dbt.type_numeric()) }} as discount_amount,
        {{ staging_lifecycle_columns(source('shop', 'order_items')) }}

    from source_order_items

)

select * from final
