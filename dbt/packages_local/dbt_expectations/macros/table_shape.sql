{#- Table shape: row counts, recency, columns. -#}

{% test expect_table_row_count_to_be_between(
    model,
    min_value=none,
    max_value=none,
    group_by=none,
    row_condition=none,
    strictly=false
) -%}
    {{ dbt_expectations.expression_between(
        model,
        expression='count(*)',
        min_value=min_value,
        max_value=max_value,
        group_by_columns=group_by,
        row_condition=row_condition,
        strictly=strictly
    ) }}
{%- endtest %}


{% test expect_table_row_count_to_equal_other_table(
    model,
    compare_model,
    group_by=none,
    compare_group_by=none,
    factor=1,
    row_condition=none,
    compare_row_condition=none
) -%}
    {{ dbt_expectations.equal_expression(
        model,
        'count(*)',
        compare_model=compare_model,
        compare_expression='count(*) * ' ~ factor,
        group_by=group_by,
        compare_group_by=compare_group_by,
        row_condition=row_condition,
        compare_row_condition=compare_row_condition
    ) }}
{%- endtest %}


{#-
    The newest value not in the future is at most `interval` `datepart`s old; a table with
    no such row fails.
-#}
{% test expect_row_values_to_have_recent_data(
    model,
    column_name,
    datepart,
    interval,
    row_condition=none
) -%}
    {{ adapter.dispatch('test_expect_row_values_to_have_recent_data', 'dbt_expectations')(
        model, column_name, datepart, interval, row_condition
    ) }}
{%- endtest %}

{% macro default__test_expect_row_values_to_have_recent_data(
    model, column_name, datepart, interval, row_condition
) -%}
    {%- set value_type = dbt_expectations.type_timestamp() -%}
    {%- set now = dbt.cast(dbt.current_timestamp(), value_type) -%}
    with max_recency as (

        select max({{ dbt.cast(column_name, value_type) }}) as max_timestamp
        from {{ model }}
        where
            {{ dbt.cast(column_name, value_type) }} <= {{ now }}
            {%- if row_condition %}
            and {{ row_condition }}
            {%- endif %}

    )

    select * from max_recency
    where
        coalesce(max_timestamp, {{ dbt.cast("'1970-01-01'", value_type) }})
        < {{ dbt.cast(dbt.dateadd(datepart, -1 * (interval | int), now), value_type) }}
{%- endmacro %}


{#- the engine's time-zone-aware timestamp: instants compare the same in every session -#}
{% macro type_timestamp() -%}
    {{ return(adapter.dispatch('type_timestamp', 'dbt_expectations')()) }}
{%- endmacro %}

{% macro default__type_timestamp() -%}
    {{ return(dbt.type_timestamp()) }}
{%- endmacro %}

{% macro postgres__type_timestamp() -%}
    {{ return('timestamp with time zone') }}
{%- endmacro %}


{#- one row per listed column that the relation has (compared after `transform`) -#}
{% test expect_table_columns_to_not_contain_set(model, column_list, transform='upper') -%}
    {%- if execute -%}
        {%- set unwanted = column_list | map(transform) | list -%}
        {%- set present = adapter.get_columns_in_relation(model)
            | map(attribute='name') | map(transform) | list -%}
        {%- set found = unwanted | select('in', present) | list -%}
        {%- if found %}
            {%- for column in found %}
    select {{ dbt.cast(dbt_expectations._quoted(column), dbt.type_string()) }} as column_name
                {{- ' union all' if not loop.last }}
            {%- endfor %}
        {%- else %}
    select {{ dbt.cast('null', dbt.type_string()) }} as column_name where 1 = 0
        {%- endif %}
    {%- endif -%}
{%- endtest %}
