{#- Per-row checks on one column: each failing row is returned. -#}

{% test expect_column_values_to_be_between(
    model,
    column_name,
    min_value=none,
    max_value=none,
    row_condition=none,
    strictly=false
) -%}
    {{ dbt_expectations.expression_between(
        model,
        expression=column_name,
        min_value=min_value,
        max_value=max_value,
        row_condition=row_condition,
        strictly=strictly
    ) }}
{%- endtest %}


{% test expect_column_values_to_not_be_null(model, column_name, row_condition=none) -%}
    {{ dbt_expectations.expression_is_true(
        model,
        expression=column_name ~ ' is not null',
        row_condition=row_condition
    ) }}
{%- endtest %}


{#- a NULL is not in any set: it fails -#}
{% test expect_column_values_to_be_in_set(
    model,
    column_name,
    value_set,
    quote_values=true,
    row_condition=none
) -%}
    with all_values as (

        select {{ column_name }} as value_field
        from {{ model }}
        {%- if row_condition %}
        where {{ row_condition }}
        {%- endif %}

    ),

    set_values as (

        {%- for value in value_set %}
        select
            {% if quote_values -%}
                {{ dbt.cast(dbt_expectations._quoted(value), dbt.type_string()) }}
            {%- else -%}
                {{ value }}
            {%- endif %} as value_field
        {{- ' union all' if not loop.last }}
        {%- endfor %}

    ),

    validation_errors as (

        select all_values.value_field
        from all_values
        left join set_values
            on all_values.value_field = set_values.value_field
        where set_values.value_field is null

    )

    select * from validation_errors
{%- endtest %}


{#- the regex matches somewhere in the value; on Postgres a NULL does not match -#}
{% test expect_column_values_to_match_regex(
    model,
    column_name,
    regex,
    row_condition=none,
    is_raw=false,
    flags=''
) -%}
    {{ dbt_expectations.expression_is_true(
        model,
        expression=dbt_expectations.regexp_instr(
            column_name, regex, is_raw=is_raw, flags=flags
        ) ~ ' > 0',
        row_condition=row_condition
    ) }}
{%- endtest %}


{#- position of the first match of `regexp` in `source_value`, 0 when none -#}
{% macro regexp_instr(source_value, regexp, position=1, occurrence=1, is_raw=false, flags='') -%}
    {{ return(adapter.dispatch('regexp_instr', 'dbt_expectations')(
        source_value, regexp, position, occurrence, is_raw, flags
    )) }}
{%- endmacro %}

{% macro default__regexp_instr(source_value, regexp, position, occurrence, is_raw, flags) -%}
    {{ return(
        'regexp_instr(' ~ source_value ~ ", '" ~ regexp ~ "', " ~ position ~ ', ' ~ occurrence ~ ')'
    ) }}
{%- endmacro %}

{#- DuckDB: regexp_matches is a partial match, as regexp_instr; 'g' means nothing here -#}
{% macro duckdb__regexp_instr(source_value, regexp, position, occurrence, is_raw, flags) -%}
    {%- set flags = (flags or '').replace('g', '') -%}
    {{ return(
        'coalesce(cast(regexp_matches(' ~ source_value ~ ", '" ~ regexp ~ "'"
        ~ (", '" ~ flags ~ "'" if flags else '') ~ ') as integer), 0)'
    ) }}
{%- endmacro %}

{#- Postgres regular expressions need no raw-string escaping; 'g' means nothing here -#}
{% macro postgres__regexp_instr(source_value, regexp, position, occurrence, is_raw, flags) -%}
    {%- set flags = (flags or '').replace('g', '') -%}
    {{ return(
        'coalesce(array_length(regexp_match(' ~ source_value ~ ", '" ~ regexp ~ "'"
        ~ (", '" ~ flags ~ "'" if flags else '') ~ '), 1), 0)'
    ) }}
{%- endmacro %}
