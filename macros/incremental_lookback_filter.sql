{#-
    Predicate for incremental models: keep raw rows whose cursor is at most
    `lookback_days` (var, default 3) older than the newest cursor already in the model.
    The lookback catches late-arriving rows (a long source transaction commits rows whose
    updated_at is older than rows already loaded). Empty (no filter) on a full build.

    Meant for `dedupe_completed_loads(..., where=incremental_lookback_filter())`: the
    cursor is unqualified, so it binds to the raw table there.
-#}
{% macro incremental_lookback_filter(cursor='updated_at', lookback_days=none) -%}
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
    {%- endif -%}
{%- endmacro %}
