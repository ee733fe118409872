{#-
    Predicate for incremental staging models: which raw rows to (re)read.

    A raw row is read again when either
    - its cursor is at most `lookback_days` (var, default 3) older than the newest cursor
      already in the model: late-arriving rows (a long source transaction commits rows
      whose updated_at is older than rows already loaded) land inside that window; or
    - it came with a load newer than the newest load already in the model: a load package
      finished late (an earlier run was killed) brings rows of any age, and they count.
      dlt load ids are unix timestamps as text; with the same number of integer digits
      they compare as text the way they compare as numbers.
    Empty (no filter) on a full build.

    Meant for `dedupe_completed_loads(..., where=incremental_lookback_filter())`: the
    columns are unqualified, so they bind to the raw table there.
-#}
{% macro incremental_lookback_filter(cursor='updated_at', lookback_days=none, load_id='_dlt_load_id') -%}
    {%- if is_incremental() -%}
        {%- set days = lookback_days if lookback_days is not none else var('lookback_days', 3) -%}
        (
            {{ cursor }} >= (
                select
                    coalesce(
                        {{ dbt.dateadd('day', -1 * (days | int), 'max(this_model.' ~ cursor ~ ')') }},
                        {{ dbt.cast("'1900-01-01 00:00:00+00'", type_timestamp_tz()) }}
                    )
                from {{ this }} as this_model
            )
            or {{ load_id }} > (
                select coalesce(max(this_model.dlt_load_id), '')
                from {{ this }} as this_model
            )
        )
    {%- endif -%}
{%- endmacro %}
