{#- Checks across several columns of a row. -#}

{#- one row per combination of the columns that occurs more than once -#}
{% test expect_compound_columns_to_be_unique(
    model,
    column_list,
    quote_columns=false,
    ignore_row_if='all_values_are_missing',
    row_condition=none
) -%}
    {%- if not column_list -%}
        {{ exceptions.raise_compiler_error(
            "`column_list` must be specified as a list of columns. Got: '" ~ column_list ~ "'."
        ) }}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for column in column_list -%}
        {%- do columns.append(adapter.quote(column) if quote_columns else column) -%}
    {%- endfor -%}
    with validation_errors as (

        select
            {%- for column in columns %}
            {{ column }},
            {%- endfor %}
            count(*) as n_records
        from {{ model }}
        where
            {{ dbt_expectations.ignore_row_if_expression(ignore_row_if, columns) }}
            {%- if row_condition %}
            and {{ row_condition }}
            {%- endif %}
        group by {{ columns | join(', ') }}
        having count(*) > 1

    )

    select * from validation_errors
{%- endtest %}


{% test expect_column_pair_values_A_to_be_greater_than_B(
    model,
    column_A,
    column_B,
    or_equal=false,
    row_condition=none
) -%}
    {{ dbt_expectations.expression_is_true(
        model,
        expression=column_A ~ (' >= ' if or_equal else ' > ') ~ column_B,
        row_condition=row_condition
    ) }}
{%- endtest %}
