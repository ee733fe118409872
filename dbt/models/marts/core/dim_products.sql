with

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        product_id,
        sku,
        product_name,
        category,
        unit_price,
        is_active,
        created_at,
        updated_at,
        deleted_at,
        is_deleted,
        dlt_load_id,
        extracted_at

    from products

)

select * from final
