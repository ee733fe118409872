{{ config(indexes=elt_lookup_indexes(['payment_id', 'order_id'], load_id=true)) }}

with

source_payments as (

    {{ dedupe_completed_loads(
        source('payments', 'payments'),
        source('payments', '_dlt_loads'),
        key='payment_id',
        where=incremental_new_keys_filter(source('payments', 'payments'), 'payment_id')
    ) }}

),

final as (

    select
        {{ dbt.cast('payment_id', dbt.type_string()) }} as payment_id,
        {{ dbt.cast('order_id', dbt.type_bigint()) }} as order_id,
        {{ cents_to_units('amount') }} as amount,
        {{ dbt.cast('upper(currency)', dbt.type_string()) }} as currency,
        {{ dbt.cast('lower(payment_method)', dbt.type_string()) }} as payment_method,
        {{ dbt.cast('lower(status)', dbt.type_string()) }} as payment_status,
        {{ dbt.cast('created_at', type_timestamp_tz()) }} as created_at,
        {{ dbt.cast('updated_at', type_timestamp_tz()) }} as updated_at,
        {{ dbt.cast('_dlt_load_id', dbt.type_string()) }} as dlt_load_id,
        {{ dbt.cast('_elt_extracted_at', type_timestamp_tz()) }} as extracted_at

    from source_payments

)

select * from final
