{#-
    Predicate for incremental models: keep every raw version of the keys that loads newer
    than the model brought.

    A key some load newer than the newest load already in the model touched is re-ranked
    over all of its raw versions, so the version kept is the one a full build keeps,
    whatever its cursor: no lookback window to size, and a source whose rows all sit in
    any window (the payments API's) is not rebuilt whole on every run. Keys no new load
    touched keep their rows. dlt load ids are unix timestamps: compared as numbers.

    Empty (no filter) on a full build. Meant for
    `dedupe_completed_loads(relation, ..., where=incremental_new_keys_filter(relation, key))`:
    the outer key column is unqualified, so it binds to the raw table there; the model
    keeps the load id as `this_load_id`.
-#}
{% macro incremental_new_keys_filter(
    relation,
    key,
    load_id='_dlt_load_id',
    this_load_id='dlt_load_id'
) -%}
    {%- if is_incremental() -%}
        {{ key }} in (
            select new_rows.{{ key }}
            from {{ relation }} as new_rows
            where {{ dbt.cast('new_rows.' ~ load_id, dbt.type_numeric()) }}
                > {{ newest_load_in_this(this_load_id) }}
        )
    {%- endif -%}
{%- endmacro %}
