{#-
    The engine's time-zone-aware timestamp type, for casting UTC instants.
    dbt.type_timestamp() is `timestamp without time zone` on Postgres, and casting a
    timestamptz to it would depend on the session's time zone.
-#}
{% macro type_timestamp_tz() -%}
    {{ return(adapter.dispatch('type_timestamp_tz')()) }}
{%- endmacro %}

{% macro default__type_timestamp_tz() -%}
    {{ return(dbt.type_timestamp()) }}
{%- endmacro %}

{% macro postgres__type_timestamp_tz() -%}
    {{ return('timestamp with time zone') }}
{%- endmacro %}

{% macro redshift__type_timestamp_tz() -%}
    {{ return('timestamptz') }}
{%- endmacro %}

{% macro snowflake__type_timestamp_tz() -%}
    {{ return('timestamp_tz') }}
{%- endmacro %}

{% macro trino__type_timestamp_tz() -%}
    {{ return('timestamp(6) with time zone') }}
{%- endmacro %}

{% macro duckdb__type_timestamp_tz() -%}
    {{ return('timestamptz') }}
{%- endmacro %}
