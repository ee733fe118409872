{#-
    Write-audit-publish for marts: readers never see a build whose tests failed.

    A model with `meta: {write_audit_publish: true}` (set per folder in dbt_project.yml)
    and materialized as a table builds in `<schema>__wap` (macros/generate_schema_name.sql);
    its tests run there, in `dbt build`'s DAG order. The on-run-end hook
    `elt_publish_audited(results)` then moves every such model that was built in this run
    and whose every test passed (or warned) into `<schema>`, all in one transaction with
    `lock_timeout` set: a reader holding a lock makes the publish give up within the timeout
    and leaves every published mart as it was. A model whose test failed, or whose tests
    did not run (`dbt run`, an excluded test), is held back: its build stays in `__wap` for
    inspection and readers keep the previous one.

    After a publish `<schema>__wap.<model>` is a view of the published table, so a later
    run that selects only a downstream model reads the published upstream. An incremental
    mart (macros/incremental_marts.sql) keeps its build as a table instead, the state its
    next build starts from, and its publish copies only the rows that changed.

    Each decision is logged as one `publish: ...` line (elt reads them to name what was
    published and what was held back).
-#}

{% macro elt_audit_suffix() -%}
    {{ return('__wap') }}
{%- endmacro %}


{% macro elt_is_audited(node) -%}
    {%- set config = node.config if node.config is not none else {} -%}
    {%- set meta = config.get('meta') or {} -%}
    {{ return(
        node.resource_type == 'model'
        and meta.get('write_audit_publish', false) | string | lower == 'true'
        and config.get('materialized') in ('table', 'incremental')
    ) }}
{%- endmacro %}


{% macro elt_publish_audited(results) -%}
    {%- if execute and results -%}
        {%- set statuses = {} -%}
        {%- for result in results -%}
            {%- do statuses.update({result.node.unique_id: result.status | string}) -%}
        {%- endfor -%}
        {%- set publish = [] -%}
        {%- for result in results
            if elt_is_audited(result.node) and result.status | string == 'success' -%}
            {%- set model_id = result.node.unique_id -%}
            {%- set problems = [] -%}
            {%- for node in graph.nodes.values()
                if node.resource_type == 'test' and elt_tests_model(node, model_id) -%}
                {%- set status = statuses.get(node.unique_id) -%}
                {%- if status not in ('pass', 'warn') -%}
                    {%- do problems.append(node.name ~ ' ' ~ (status or 'not run')) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set built = adapter.get_relation(
                result.node.database, result.node.schema, result.node.alias
            ) -%}
            {%- if problems -%}
                {%- do log(
                    'publish: held back ' ~ elt_relation_name(elt_published_relation(result.node))
                    ~ ' (' ~ problems | join(', ') ~ ')', info=true
                ) -%}
            {%- elif built is not none -%}
                {%- do publish.append(result.node) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if publish -%}
            {%- do adapter.dispatch('elt_publish')(publish) -%}
            {%- for node in publish -%}
                {%- do log('publish: published ' ~ elt_relation_name(elt_published_relation(node)), info=true) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- a test is a model's own when attached to it (or, unattached, when it reads it) -#}
{% macro elt_tests_model(test, model_id) -%}
    {%- if test.attached_node -%}
        {{ return(test.attached_node == model_id) }}
    {%- endif -%}
    {{ return(model_id in test.depends_on.nodes) }}
{%- endmacro %}


{#- where readers find a model: its schema without the audit suffix -#}
{% macro elt_published_relation(node) -%}
    {{ return(api.Relation.create(
        database=node.database,
        schema=node.schema[:-(elt_audit_suffix() | length)],
        identifier=node.alias,
        type='table',
    )) }}
{%- endmacro %}


{#-
    Postgres: one transaction under `lock_timeout`. A table mart: the previous table is
    renamed away and dropped, the audited build takes its place (`set schema`), and a view
    of it stays behind. An incremental mart: its changed rows are copied over, or on a
    full build the whole build is copied in beside and renamed into place; its build stays
    a table, and its marks are recorded in the same transaction. The published copy gets
    the model's indexes (the build has them from dbt): later publishes delete by key.
-#}
{% macro postgres__elt_publish(nodes) -%}
    {%- set changes_only = {} -%}
    {%- for node in nodes -%}
        {%- set target = elt_published_relation(node) -%}
        {%- set previous = adapter.get_relation(target.database, target.schema, target.identifier) -%}
        {%- do changes_only.update({node.unique_id: elt_publishes_changes(node, previous)}) -%}
    {%- endfor -%}
    {%- call statement('elt_publish', auto_begin=true) -%}
        {{ set_transform_timeouts('local') }};
        {%- for node in nodes %}
            {%- set audited = api.Relation.create(
                database=node.database, schema=node.schema, identifier=node.alias, type='table'
            ) %}
            {%- set target = elt_published_relation(node) %}
            {%- set previous = adapter.get_relation(target.database, target.schema, target.identifier) %}
            {%- set retired = target.incorporate(path={'identifier': node.alias ~ '__elt_retired'}) %}
            {%- set incremental = node.config.get('materialized') == 'incremental' %}
            create schema if not exists {{ adapter.quote(target.schema) }};
            {%- if changes_only[node.unique_id] %}
            {{ elt_publish_changes(node, audited, target) }}
            {%- else %}
            drop table if exists {{ retired }} cascade;
            {%- if previous is not none %}
            alter {{ previous.type }} {{ previous }} rename to {{ adapter.quote(retired.identifier) }};
            {%- endif %}
            {%- if incremental %}
            create table {{ target }} as select * from {{ audited }};
            {%- for index in node.config.get('indexes') or [] %}
            {{ get_create_index_sql(target, index) }};
            {%- endfor %}
            {%- else %}
            alter table {{ audited }} set schema {{ adapter.quote(target.schema) }};
            {%- endif %}
            {%- if previous is not none %}
            drop {{ previous.type }} {{ retired.incorporate(type=previous.type) }} cascade;
            {%- endif %}
            {%- if not incremental %}
            create view {{ audited }} as select * from {{ target }};
            {%- endif %}
            {%- endif %}
            {%- if incremental %}
            {{ elt_record_marks(node) }}
            {%- endif %}
        {%- endfor %}
    {%- endcall -%}
    {%- do adapter.commit() -%}
{%- endmacro %}


{#-
    Other engines: a copy, statement by statement (not atomic where the engine has no
    transactional DDL); an engine that can swap atomically gets its own `<adapter>__`.
-#}
{% macro default__elt_publish(nodes) -%}
    {%- for node in nodes -%}
        {%- set audited = api.Relation.create(
            database=node.database, schema=node.schema, identifier=node.alias, type='table'
        ) -%}
        {%- set target = elt_published_relation(node) -%}
        {%- set previous = adapter.get_relation(target.database, target.schema, target.identifier) -%}
        {%- set incremental = node.config.get('materialized') == 'incremental' -%}
        {%- if incremental and elt_publishes_changes(node, previous) -%}
            {%- call statement('elt_publish') -%}
                {{ elt_publish_changes(node, audited, target) }}
            {%- endcall -%}
        {%- else -%}
            {%- do adapter.create_schema(target) -%}
            {%- call statement('elt_publish') -%}
                {{ get_create_table_as_sql(false, target.incorporate(
                    path={'identifier': node.alias ~ '__elt_next'}
                ), 'select * from ' ~ audited) }}
            {%- endcall -%}
            {%- do adapter.drop_relation(target) -%}
            {%- do adapter.rename_relation(
                target.incorporate(path={'identifier': node.alias ~ '__elt_next'}), target
            ) -%}
        {%- endif -%}
        {%- if incremental -%}
            {%- call statement('elt_record_marks') -%}
                {{ elt_record_marks(node) }}
            {%- endcall -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
{%- endmacro %}


{#- `schema.table`, as readers write it -#}
{% macro elt_relation_name(relation) -%}
    {{ return(relation.schema ~ '.' ~ relation.identifier) }}
{%- endmacro %}
