with

source_products as (

    {{ dedupe_completed_loads(
        source('shop', 'products'),
        source('shop', '_dlt_loads'),
        tiebreak=existing_columns(source('shop', 'products'), ['_elt_lsn']),
        key='product_id'
    ) }}

),

final as (

    select
        {{ dbt.cast('product_id', dbt.type_bigint()) }} as product_id,
        {{ dbt.cast('sku', dbt.type_string()) }} as sku,
        {{ dbt.cast('product_name', dbt.type_string()) }} as product_name,
        {{ dbt.cast('category', dbt.type_string()) }} as category,
        {{ dbt.cast('unit_price', dbt.type_numeric()) }} as unit_price,
        {{ dbt.cast('is_active', dbt.type_boolean()) }} as is_active,
        {{ staging_lifecycle_columns(source('shop', 'products')) }}

    from source_products

)

select * from final
