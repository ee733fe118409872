{#-
    Select the current version of every key of a dlt-loaded raw table.

    Only rows brought by a completed load count: their `_dlt_load_id` must be in the
    source's `_dlt_loads` table with status 0. A load that failed half way, or that never
    got recorded, may have written rows that must not reach staging.

    Of the versions left, the one with the latest cursor wins; on a tie the latest load
    (dlt load ids are unix timestamps, so they sort by time). Deduped with row_number()
    and a where, which every engine runs (no `distinct on`, no `qualify`).

    Returns a select statement with the raw columns plus `dlt_version_rank` (always 1):
    use it as the body of an import CTE and list the columns you keep after it.

    relation:       the raw table, as `source(...)`
    loads_relation: the dlt loads table of the same dataset, as `source(..., '_dlt_loads')`
    key:            the primary key column, or a list of columns for a composite key
    cursor:         the column whose latest value marks the current version
    where:          an optional extra predicate on the raw rows (see incremental_lookback_filter)
    tiebreak:       optional columns ordering the versions of one key in one load with the
                    same cursor, latest first (NULL counts as earliest): e.g. `_elt_lsn`, the
                    WAL position of a version read by logical replication
-#}
{% macro dedupe_completed_loads(
    relation,
    loads_relation,
    key,
    cursor='updated_at',
    load_id='_dlt_load_id',
    where=none,
    tiebreak=[]
) -%}
    {%- set keys = [key] if key is string else key %}
    select ranked_rows.*
    from (
        select
            raw_rows.*,
            row_number() over (
                partition by
                {%- for column in keys %} raw_rows.{{ column }}{{ "," if not loop.last }}{% endfor %}
                order by raw_rows.{{ cursor }} desc, raw_rows.{{ load_id }} desc
                {%- for column in tiebreak %}, coalesce(raw_rows.{{ column }}, -1) desc{% endfor %}
            ) as dlt_version_rank
        from {{ relation }} as raw_rows
        where
            raw_rows.{{ load_id }} in (
                select completed_loads.load_id
                from {{ loads_relation }} as completed_loads
                where completed_loads.status = 0
            )
            {%- if where %}
            and ({{ where }})
            {%- endif %}
    ) as ranked_rows
    where ranked_rows.dlt_version_rank = 1
{%- endmacro %}
