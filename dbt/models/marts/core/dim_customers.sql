with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

country_codes as (

    select * from {{ ref('country_codes') }}

),

final as (

    select
        customers.customer_id,
        {{ dbt.hash('lower(customers.email)') }} as email_hash,
        customers.country_code,
        country_codes.country_name,
        country_codes.region,
        customers.created_at,
        customers.updated_at,
        customers.deleted_at,
        customers.is_deleted,
        customers.dlt_load_id,
        customers.extracted_at

    from customers
    left join country_codes
        on customers.country_code = country_codes.country_code

)

select * from final
