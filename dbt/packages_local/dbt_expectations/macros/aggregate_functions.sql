{#- Aggregates over a column, optionally per group: each failing group is returned. -#}

{% test expect_column_distinct_count_to_be_greater_than(
    model,
    column_name,
    value,
    group_by=none,
    row_condition=none
) -%}
    {{ dbt_expectations.expression_is_true(
        model,
        expression='count(distinct ' ~ column_name ~ ') > ' ~ value,
        group_by_columns=group_by,
        row_condition=row_condition
    ) }}
{%- endtest %}


{% test expect_column_mean_to_be_between(
    model,
    column_name,
    min_value=none,
    max_value=none,
    group_by=none,
    row_condition=none,
    strictly=false
) -%}
    {{ dbt_expectations.expression_between(
        model,
        expression='avg(' ~ column_name ~ ')',
        min_value=min_value,
        max_value=max_value,
        group_by_columns=group_by,
        row_condition=row_condition,
        strictly=strictly
    ) }}
{%- endtest %}
