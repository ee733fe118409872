{#-
    The building blocks every expectation is made of. A test returns its failing rows
    (or failing groups): dbt counts them.
-#}

{#- rows (or groups) where `expression` is not `test_condition`; NULL is not a failure -#}
{% macro expression_is_true(
    model,
    expression,
    test_condition='= true',
    group_by_columns=none,
    row_condition=none
) -%}
    with grouped_expression as (

        {{ dbt_expectations.get_select(model, expression, row_condition, group_by_columns) }}

    ),

    validation_errors as (

        select * from grouped_expression
        where not (expression {{ test_condition }})

    )

    select * from validation_errors
{%- endmacro %}


{#- `expression` within [min_value, max_value] (bounds excluded when `strictly`) -#}
{% macro expression_between(
    model,
    expression,
    min_value=none,
    max_value=none,
    group_by_columns=none,
    row_condition=none,
    strictly=false
) -%}
    {%- if min_value is none and max_value is none -%}
        {{ exceptions.raise_compiler_error(
            'You have to provide either a min_value, max_value or both.'
        ) }}
    {%- endif -%}
    {%- set or_equal = '' if strictly else '=' -%}
    {%- set bounded -%}
        (
            1 = 1
            {%- if min_value is not none %}
            and {{ expression }} >{{ or_equal }} {{ min_value }}
            {%- endif %}
            {%- if max_value is not none %}
            and {{ expression }} <{{ or_equal }} {{ max_value }}
            {%- endif %}
        )
    {%- endset -%}
    {{ dbt_expectations.expression_is_true(
        model,
        expression=bounded,
        group_by_columns=group_by_columns,
        row_condition=row_condition
    ) }}
{%- endmacro %}


{#- one select of `expression` over `model`, grouped when `group_by` is given -#}
{% macro get_select(model, expression, row_condition, group_by) -%}
    select
        {%- for column in group_by or [] %}
        {{ column }} as col_{{ loop.index }},
        {%- endfor %}
        {{ expression }} as expression
    from {{ model }}
    {%- if row_condition %}
    where {{ row_condition }}
    {%- endif %}
    {%- if group_by %}
    group by {{ group_by | join(', ') }}
    {%- endif %}
{%- endmacro %}


{#-
    `expression` over `model` equals `compare_expression` over `compare_model`, per group
    (groups matched by position: group_by[i] with compare_group_by[i]); a group missing on
    one side counts as 0 there. compare_* default to their counterparts.
-#}
{% macro equal_expression(
    model,
    expression,
    compare_model=none,
    compare_expression=none,
    group_by=none,
    compare_group_by=none,
    row_condition=none,
    compare_row_condition=none,
    tolerance=0.0,
    tolerance_percent=none
) -%}
    {%- set compare_model = compare_model or model -%}
    {%- set compare_expression = compare_expression or expression -%}
    {%- set compare_row_condition = compare_row_condition or row_condition -%}
    {%- set compare_group_by = compare_group_by or group_by -%}
    {%- set n_cols = (group_by | length) if group_by else 0 -%}
    with a as (

        {{ dbt_expectations.get_select(model, expression, row_condition, group_by) }}

    ),

    b as (

        {{ dbt_expectations.get_select(
            compare_model, compare_expression, compare_row_condition, compare_group_by
        ) }}

    ),

    final as (

        select
            {%- for i in range(1, n_cols + 1) %}
            coalesce(a.col_{{ i }}, b.col_{{ i }}) as col_{{ i }},
            {%- endfor %}
            a.expression,
            b.expression as compare_expression,
            abs(coalesce(a.expression, 0) - coalesce(b.expression, 0)) as expression_difference,
            abs(coalesce(a.expression, 0) - coalesce(b.expression, 0))
            / nullif(a.expression * 1.0, 0) as expression_difference_percent
        from a
        {%- if n_cols > 0 %}
        full outer join b
            on
            {%- for i in range(1, n_cols + 1) %}
            {{ 'and ' if not loop.first }}a.col_{{ i }} = b.col_{{ i }}
            {%- endfor %}
        {%- else %}
        cross join b
        {%- endif %}

    )

    select * from final
    where
    {%- if tolerance_percent %}
        expression_difference_percent > {{ tolerance_percent }}
    {%- else %}
        expression_difference > {{ tolerance }}
    {%- endif %}
{%- endmacro %}


{#- a predicate excluding rows whose listed columns are all (or any) NULL -#}
{% macro ignore_row_if_expression(ignore_row_if, columns) -%}
    {%- set allowed = ['all_values_are_missing', 'any_value_is_missing'] -%}
    {%- if ignore_row_if not in allowed -%}
        {{ exceptions.raise_compiler_error(
            '`ignore_row_if` must be one of ' ~ (allowed | join(', '))
            ~ ". Got: '" ~ ignore_row_if ~ "'."
        ) }}
    {%- endif -%}
    {%- set operator = ' and ' if ignore_row_if == 'all_values_are_missing' else ' or ' -%}
    not ({% for column in columns %}{{ column }} is null{{ operator if not loop.last }}{% endfor %})
{%- endmacro %}


{#- a SQL string literal of `value` (quotes doubled) -#}
{% macro _quoted(value) -%}
    '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}
