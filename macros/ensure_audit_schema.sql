{#-
    The `elt_audit` schema holds run history and dbt results; it exists from the first
    dbt run on, whatever the engine (adapter.create_schema is a no-op where it exists).
-#}
{% macro ensure_audit_schema() -%}
    {%- if execute -%}
        {%- do adapter.create_schema(
            api.Relation.create(database=target.database, schema='elt_audit')
        ) -%}
    {%- endif -%}
{%- endmacro %}
