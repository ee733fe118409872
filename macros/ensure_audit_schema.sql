{#-
    The `elt_audit` schema holds run history and dbt results; it exists from the first
    dbt run on, whatever the engine (adapter.create_schema is a no-op where it exists).
    Not on Spark: its elt_audit is a DuckDB file beside the lake (runtime/engines/spark.py).
-#}
{% macro ensure_audit_schema() -%}
    {%- if execute and target.type != 'spark' -%}
        {%- do adapter.create_schema(
            api.Relation.create(database=target.database, schema='elt_audit')
        ) -%}
    {%- endif -%}
{%- endmacro %}
