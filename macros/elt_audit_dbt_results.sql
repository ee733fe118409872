{#-
    on-run-end: one row per node result in elt_audit.dbt_results, so run history outlives
    dbt's target/ folder. `run_id` ties the rows to elt_audit.runs (elt sets ELT_RUN_ID for
    the dbt it invokes; null when dbt runs on its own). Sources are named
    `<source>.<table>`, as elt names them. The table is created on first use. Not on
    Spark: its elt_audit is a DuckDB file beside the lake (runtime/engines/spark.py).
-#}
{% macro elt_audit_dbt_results(results) -%}
    {%- if execute and results and target.type != 'spark' -%}
        {%- set relation = api.Relation.create(
            database=target.database, schema='elt_audit', identifier='dbt_results'
        ) -%}
        {%- do adapter.create_schema(relation) -%}
        {%- call statement('elt_audit_dbt_results_table') -%}
            create table if not exists {{ relation }} (
                invocation_id {{ dbt.type_string() }},
                run_id {{ dbt.type_string() }},
                unique_id {{ dbt.type_string() }},
                name {{ dbt.type_string() }},
                resource_type {{ dbt.type_string() }},
                status {{ dbt.type_string() }},
                failures {{ dbt.type_int() }},
                rows_affected {{ dbt.type_bigint() }},
                execution_time {{ dbt.type_float() }},
                message {{ dbt.type_string() }},
                finished_at {{ type_timestamp_tz() }}
            )
        {%- endcall -%}
        {%- set run_id = env_var('ELT_RUN_ID', '') -%}
        {%- for batch in results | batch(200) -%}
            {%- call statement('elt_audit_dbt_results_rows') -%}
                insert into {{ relation }} (
                    invocation_id, run_id, unique_id, name, resource_type, status,
                    failures, rows_affected, execution_time, message, finished_at
                )
                values
                {%- for result in batch %}
                    {%- set node = result.node %}
                    {%- set adapter_response = result.adapter_response or {} %}
                    (
                        {{ elt_audit_literal(invocation_id) }},
                        {{ elt_audit_literal(run_id or none) }},
                        {{ elt_audit_literal(node.unique_id) }},
                        {{ elt_audit_literal(
                            node.source_name ~ '.' ~ node.name
                            if node.resource_type == 'source' else node.name
                        ) }},
                        {{ elt_audit_literal(node.resource_type) }},
                        {{ elt_audit_literal(result.status) }},
                        {{ elt_audit_number(result.failures) }},
                        {{ elt_audit_number(adapter_response.get('rows_affected')) }},
                        {{ elt_audit_number(result.execution_time) }},
                        {{ elt_audit_literal(result.message, 2000) }},
                        {{ elt_audit_finished_at(result) }}
                    ){{ ',' if not loop.last }}
                {%- endfor %}
            {%- endcall -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{#- a SQL string literal (quotes doubled, cut to `max_length`), or null -#}
{% macro elt_audit_literal(value, max_length=none) -%}
    {%- if value is none -%}
        null
    {%- else -%}
        {%- set text = value | string -%}
        {%- if max_length is not none -%}{%- set text = text[:max_length] -%}{%- endif -%}
        '{{ text.replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}


{#- a number, or null for anything that is not one -#}
{% macro elt_audit_number(value) -%}
    {%- if value is number -%}{{ value }}{%- else -%}null{%- endif -%}
{%- endmacro %}


{#- when the node finished (its last timing entry), as a UTC timestamp; else now -#}
{% macro elt_audit_finished_at(result) -%}
    {%- set timings = result.timing or [] -%}
    {%- set finished = timings[-1].completed_at if timings else none -%}
    {%- if finished -%}
        {{ dbt.cast(
            "'" ~ finished.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "+00:00'", type_timestamp_tz()
        ) }}
    {%- else -%}
        {{ dbt.current_timestamp() }}
    {%- endif -%}
{%- endmacro %}
