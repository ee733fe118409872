{#-
    Use a custom schema verbatim (`staging`, `marts`) instead of dbt's default
    `<target_schema>_<custom_schema>`, so the warehouse has the exact schema names the
    design fixes. Nodes without a custom schema land in the target's schema.

    Models that are written, audited, then published (`meta: {write_audit_publish: true}`,
    see macros/write_audit_publish.sql) build in `<schema>__wap` beside the published one:
    their tests read that build, and the on-run-end hook moves it into `<schema>` only when
    they pass.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set schema = target.schema if custom_schema_name is none else custom_schema_name | trim -%}
    {%- if elt_is_audited(node) -%}
        {{ schema ~ elt_audit_suffix() }}
    {%- else -%}
        {{ schema }}
    {%- endif -%}
{%- endmacro %}
