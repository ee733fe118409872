{#-
    The columns every staging model of a dlt-loaded, soft-deleting source ends with:
    its lifecycle timestamps (UTC, time-zone aware), the soft-delete flag, and the
    lineage back to the load that brought the row (`dlt_load_id`, `extracted_at`).
-#}
{% macro staging_lifecycle_columns() -%}
    {{ dbt.cast('created_at', type_timestamp_tz()) }} as created_at,
    {{ dbt.cast('updated_at', type_timestamp_tz()) }} as updated_at,
    {{ dbt.cast('deleted_at', type_timestamp_tz()) }} as deleted_at,
    deleted_at is not null as is_deleted,
    {{ dbt.cast('_dlt_load_id', dbt.type_string()) }} as dlt_load_id,
    {{ dbt.cast('_elt_extracted_at', type_timestamp_tz()) }} as extracted_at
{%- endmacro %}
