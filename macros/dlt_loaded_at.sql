{#-
    Source freshness from load time, for tables loaded by dlt: when the newest completed
    load (status 0 in the dataset's `_dlt_loads`) that wrote rows to the table finished.
    Rows of a failed or unrecorded load do not count, and a table without rows of a
    completed load gives null, which dbt ages as infinitely old: an empty table is an
    error, never "fresh". For `_dlt_loads` itself: the newest completed load (the loader's
    heartbeat, whether or not rows changed).

    Use as the source's `loaded_at_query` (rendered at run time, where `this` is the
    source table):   loaded_at_query: "{{ dlt_loaded_at(this) }}"
-#}
{% macro dlt_loaded_at(relation, loads_table='_dlt_loads', load_id='_dlt_load_id') -%}
    {%- set loads = api.Relation.create(
        database=relation.database, schema=relation.schema, identifier=loads_table
    ) -%}
    select max(completed_loads.inserted_at)
    from {{ loads }} as completed_loads
    where
        completed_loads.status = 0
        {%- if relation.identifier != loads_table %}
        and completed_loads.load_id in (
            select loaded_rows.{{ load_id }} from {{ relation }} as loaded_rows
        )
        {%- endif %}
{%- endmacro %}
