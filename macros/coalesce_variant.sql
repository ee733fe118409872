{#-
    Handle a type change in a raw table: the column's value, else the value dlt put in its
    variant column (`<column>__v_<type>`, see loaders/schema_evolution.py) converted by
    `variant_sql` (default: the variant column as it is). Where the variant column does
    not exist (a fresh warehouse, another environment) it is the column alone, so the
    model runs everywhere. Naming the variant here is what tells `elt test` and
    `elt transform` that the model handles it.

    relation:    the raw table, as `source(...)`
    column:      the column whose type changed, e.g. 'shipping_amount'
    variant:     its variant column, e.g. 'shipping_amount__v_text'
    variant_sql: SQL turning the variant's values into the column's type, e.g.
                 "cast(nullif(shipping_amount__v_text, 'free') as numeric)"
-#}
{% macro coalesce_variant(relation, column, variant, variant_sql=none) -%}
    {%- if existing_columns(relation, [variant]) -%}
        coalesce({{ column }}, {{ variant_sql or variant }})
    {%- else -%}
        {{ column }}
    {%- endif -%}
{%- endmacro %}
