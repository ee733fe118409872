{#-
    Pre-hook SQL that bounds a model's DDL: `lock_timeout` (a swap blocked by a reader's
    lock gives up instead of queueing every later reader behind it) and `statement_timeout`.
    Seconds, from the dbt vars `lock_timeout_seconds` / `statement_timeout_seconds`
    (dbt_project.yml), overridden by ELT_LOCK_TIMEOUT_SECONDS / ELT_STATEMENT_TIMEOUT_SECONDS.
    `scope` is '' for the session (model pre-hooks) or 'local' for one transaction.
    Engines without these settings render nothing.
-#}
{% macro set_transform_timeouts(scope='') -%}
    {{ return(adapter.dispatch('set_transform_timeouts')(scope)) }}
{%- endmacro %}

{% macro default__set_transform_timeouts(scope) -%}
    {{ return('') }}
{%- endmacro %}

{% macro postgres__set_transform_timeouts(scope) -%}
    {%- set lock_seconds = elt_timeout_seconds('lock') -%}
    {%- set statement_seconds = elt_timeout_seconds('statement') -%}
    {{ return(
        'set ' ~ scope ~ ' lock_timeout = ' ~ (lock_seconds * 1000) | int ~ '; '
        ~ 'set ' ~ scope ~ ' statement_timeout = ' ~ (statement_seconds * 1000) | int
    ) }}
{%- endmacro %}

{#- one timeout in seconds: the environment, else the dbt var -#}
{% macro elt_timeout_seconds(kind) -%}
    {%- set default = var(kind ~ '_timeout_seconds', 10 if kind == 'lock' else 3600) -%}
    {{ return(env_var('ELT_' ~ kind | upper ~ '_TIMEOUT_SECONDS', default | string) | float) }}
{%- endmacro %}
