{#-
    numerator / denominator rounded to `scale` decimal places, exactly where the engine
    divides decimals exactly (Postgres numeric). DuckDB divides decimals in double
    precision, where a quotient like 0.285 is 0.28499999999999998 and rounds down: the
    quotient is first cast to a decimal of 12 places (which restores 0.285), then rounded
    as a decimal, so both engines round the same half-way values the same way.
-#}
{% macro divide_rounded(numerator, denominator, scale) -%}
    {{ return(adapter.dispatch('divide_rounded')(numerator, denominator, scale)) }}
{%- endmacro %}

{% macro default__divide_rounded(numerator, denominator, scale) -%}
    round(({{ numerator }}) / ({{ denominator }}), {{ scale }})
{%- endmacro %}

{% macro duckdb__divide_rounded(numerator, denominator, scale) -%}
    round(cast(({{ numerator }}) / ({{ denominator }}) as decimal(38, 12)), {{ scale }})
{%- endmacro %}
