{#-
    The columns every staging model of a dlt-loaded, soft-deleting source ends with:
    its lifecycle timestamps (UTC, time-zone aware), the delete flag, and the
    lineage back to the load that brought the row (`dlt_load_id`, `extracted_at`).

    A row is deleted when the source soft-deleted it (`deleted_at`) or hard-deleted it:
    then its latest raw version is a tombstone whose `_elt_deleted_at` says when the
    loader saw it gone (every other column NULL; see the README, "Deletes and CDC").
    Pass the raw `relation` to read tombstones; without it, or before the first tombstone
    creates the column, only soft deletes count.
-#}
{% macro staging_lifecycle_columns(relation=none) -%}
    {%- set tombstones = existing_columns(relation, ['_elt_deleted_at']) if relation is not none else [] -%}
    {%- set deleted_at = 'coalesce(_elt_deleted_at, deleted_at)' if tombstones else 'deleted_at' -%}
    {{ dbt.cast('created_at', type_timestamp_tz()) }} as created_at,
    {{ dbt.cast('updated_at', type_timestamp_tz()) }} as updated_at,
    {{ dbt.cast(deleted_at, type_timestamp_tz()) }} as deleted_at,
    {{ deleted_at }} is not null as is_deleted,
    {{ dbt.cast('_dlt_load_id', dbt.type_string()) }} as dlt_load_id,
    {{ dbt.cast('_elt_extracted_at', type_timestamp_tz()) }} as extracted_at
{%- endmacro %}
