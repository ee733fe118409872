{#-
    The PostgreSQL indexes of an incremental model (dbt's `indexes` config, set in the
    model's SQL), none on other engines (DuckDB's would cost every insert, and its full
    refresh races on them across threads; Spark has none):

    - one per column of `columns`: the key, which each run deletes and re-inserts by and
      key tests probe, and columns others look the model's rows up by;
    - with `load_id`, one on the load id as the incremental filters and scoped tests
      compare it, spelled by the same macros so the planner matches it.

    A delta then looks rows up instead of scanning the tables. An incremental mart's
    published copy gets the same indexes (macros/write_audit_publish.sql).
-#}
{% macro elt_lookup_indexes(columns, load_id=false) -%}
    {%- set indexes = [] -%}
    {%- if target.type == 'postgres' -%}
        {%- for column in columns -%}
            {%- do indexes.append({'columns': [column]}) -%}
        {%- endfor -%}
        {%- if load_id -%}
            {%- do indexes.append(
                {'columns': ['(' ~ dbt.cast('dlt_load_id', dbt.type_numeric()) | trim ~ ')']}
            ) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(indexes) }}
{%- endmacro %}
