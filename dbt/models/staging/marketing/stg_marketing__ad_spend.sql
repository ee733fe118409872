with

source_ad_spend as (

    {{ dedupe_completed_loads(
        source('marketing', 'ad_spend'),
        source('marketing', '_dlt_loads'),
        key=['spend_date', 'campaign_id'],
        cursor='_elt_file_modified_at'
    ) }}

),

final as (

    select
        {{ dbt.concat([
            dbt.cast('spend_date', dbt.type_string()), "'|'", 'campaign_id'
        ]) }} as ad_spend_id,
        {{ dbt.cast('spend_date', 'date') }} as spend_date,
        {{ dbt.cast('campaign_id', dbt.type_string()) }} as campaign_id,
        {{ dbt.cast('lower(channel)', dbt.type_string()) }} as channel,
        {{ dbt.cast('impressions', dbt.type_bigint()) }} as impressions,
        {{ dbt.cast('clicks', dbt.type_bigint()) }} as clicks,
        {{ dbt.cast('spend', dbt.type_numeric()) }} as spend,
        {{ dbt.cast('upper(currency)', dbt.type_string()) }} as currency,
        {{ file_lineage_columns() }}

    from source_ad_spend

)

select * from final
