{#-
    The columns of `columns` that `relation` has (lower case), in the order given: for
    bookkeeping columns a loader adds only once it first needs them, such as
    `_elt_deleted_at` (a tombstone, loaders/shop/reconcile.py) or `_elt_lsn` (a version
    read by logical replication, loaders/shop/replication.py). A model naming them through
    this macro runs on a warehouse that has them and on one that does not yet. Empty at
    parse time and where the relation cannot be introspected.

    relation: the raw table, as `source(...)`
    columns:  the column names to look for
-#}
{% macro existing_columns(relation, columns) -%}
    {%- set present = [] -%}
    {%- if execute -%}
        {%- for existing in adapter.get_columns_in_relation(relation) -%}
            {%- do present.append(existing.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set found = [] -%}
    {%- for column in columns if column | lower in present -%}
        {%- do found.append(column | lower) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}
