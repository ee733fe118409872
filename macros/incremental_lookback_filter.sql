{#-
    Predicate for incremental models: keep raw rows that are late or new for the model.

    - Rows whose cursor is at most `lookback_days` (var, default 3) older than the newest
      cursor already in the model: the lookback window.
    - Rows brought by a load newer than the newest load already in the model, whatever
      their cursor: a late-arriving row (a long source transaction commits rows whose
      updated_at is older than rows already loaded; the loader's lag window catches them
      in a later load) is never left out, however late.

    Empty (no filter) on a full build. Meant for
    `dedupe_completed_loads(..., where=incremental_lookback_filter())`: the raw columns are
    unqualified, so they bind to the raw table there; the model keeps the load id as
    `this_load_id`. dlt load ids are unix timestamps: compared as numbers.
-#}
{% macro incremental_lookback_filter(
    cursor='updated_at',
    lookback_days=none,
    load_id='_dlt_load_id',
    this_load_id='dlt_load_id'
) -%}
    {%- if is_incremental() -%}
        {%- set days = lookback_days if lookback_days is not none else var('lookback_days', 3) -%}
        {{ cursor }} >= (
            select
                coalesce(
                    {{ dbt.dateadd('day', -1 * (days | int), 'max(this_model.' ~ cursor ~ ')') }},
                    {{ dbt.cast("'1900-01-01 00:00:00+00'", type_timestamp_tz()) }}
                )
            from {{ this }} as this_model
        )
        or {{ dbt.cast(load_id, dbt.type_numeric()) }} > {{ newest_load_in_this(this_load_id) }}
    {%- endif -%}
{%- endmacro %}


{#- SQL: the newest load id (a number) the incremental model already holds, 0 if none -#}
{% macro newest_load_in_this(this_load_id='dlt_load_id') -%}
    (
        select
            coalesce(
                max({{ dbt.cast('this_model.' ~ this_load_id, dbt.type_numeric()) }}), 0
            )
        from {{ this }} as this_model
    )
{%- endmacro %}
