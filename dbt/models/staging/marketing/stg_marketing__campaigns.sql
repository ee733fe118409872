with

source_campaigns as (

    {{ dedupe_completed_loads(
        source('marketing', 'campaigns'),
        source('marketing', '_dlt_loads'),
        key='campaign_id',
        cursor='_elt_file_modified_at'
    ) }}

),

final as (

    select
        {{ dbt.cast('campaign_id', dbt.type_string()) }} as campaign_id,
        {{ dbt.cast('campaign_name', dbt.type_string()) }} as campaign_name,
        {{ dbt.cast('lower(channel)', dbt.type_string()) }} as channel,
        {{ dbt.cast('objective', dbt.type_string()) }} as objective,
        {{ dbt.cast('daily_budget', dbt.type_numeric()) }} as daily_budget,
        {{ dbt.cast('started_on', 'date') }} as started_on,
        {{ file_lineage_columns() }}

    from source_campaigns

)

select * from final
