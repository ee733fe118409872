{#-
    Pre-hook SQL that pins the session to UTC where the engine's session time zone decides
    how timestamps become dates (Postgres). Elsewhere it renders nothing and dbt skips it.
-#}
{% macro set_session_time_zone_utc() -%}
    {{ return(adapter.dispatch('set_session_time_zone_utc')()) }}
{%- endmacro %}

{% macro default__set_session_time_zone_utc() -%}
    {{ return('') }}
{%- endmacro %}

{% macro postgres__set_session_time_zone_utc() -%}
    {{ return("set time zone 'UTC'") }}
{%- endmacro %}

{% macro duckdb__set_session_time_zone_utc() -%}
    {{ return("set timezone = 'UTC'") }}
{%- endmacro %}
