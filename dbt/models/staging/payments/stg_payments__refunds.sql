{{ config(indexes=elt_lookup_indexes(['refund_id', 'order_id'], load_id=true)) }}

with

source_refunds as (

    {{ dedupe_completed_loads(
        source('payments', 'refunds'),
        source('payments', '_dlt_loads'),
        key='refund_id',
        where=incremental_new_keys_filter(source('payments', 'refunds'), 'refund_id')
    ) }}

),

final as (

    select
        {{ dbt.cast('refund_id', dbt.type_string()) }} as refund_id,
        {{ dbt.cast('payment_id', dbt.type_string()) }} as payment_id,
        {{ dbt.cast('order_id', dbt.type_bigint()) }} as order_id,
        {{ cents_to_units('amount') }} as amount,
        {{ dbt.cast('upper(currency)', dbt.type_string()) }} as currency,
        {{ dbt.cast('lower(reason)', dbt.type_string()) }} as refund_reason,
        {{ dbt.cast('lower(status)', dbt.type_string()) }} as refund_status,
        {{ dbt.cast('created_at', type_timestamp_tz()) }} as created_at,
        {{ dbt.cast('updated_at', type_timestamp_tz()) }} as updated_at,
        {{ dbt.cast('_dlt_load_id', dbt.type_string()) }} as dlt_load_id,
        {{ dbt.cast('_elt_extracted_at', type_timestamp_tz()) }} as extracted_at

    from source_refunds

)

select * from final
