{#-
    The columns every staging model of a file-fed source ends with: where the row came
    from (file, line, the file's modification time) and the load that brought it.
-#}
{% macro file_lineage_columns() -%}
    {{ dbt.cast('_elt_file', dbt.type_string()) }} as source_file,
    {{ dbt.cast('_elt_line', dbt.type_bigint()) }} as source_line,
    {{ dbt.cast('_elt_file_modified_at', type_timestamp_tz()) }} as file_modified_at,
    {{ dbt.cast('_dlt_load_id', dbt.type_string()) }} as dlt_load_id,
    {{ dbt.cast('_elt_extracted_at', type_timestamp_tz()) }} as extracted_at
{%- endmacro %}
