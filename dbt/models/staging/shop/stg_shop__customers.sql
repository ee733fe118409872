with

source_customers as (

    {{ dedupe_completed_loads(
        source('shop', 'customers'),
        source('shop', '_dlt_loads'),
        tiebreak=existing_columns(source('shop', 'customers'), ['_elt_lsn']),
        key='customer_id'
    ) }}

),

final as (

    select
        {{ dbt.cast('customer_id', dbt.type_bigint()) }} as customer_id,
        {{ dbt.cast('email', dbt.type_string()) }} as email,
        {{ dbt.cast('full_name', dbt.type_string()) }} as full_name,
        {{ dbt.cast('upper(country_code)', dbt.type_string()) }} as country_code,
        {{ staging_lifecycle_columns(source('shop', 'customers')) }}

    from source_customers

)

select * from final
