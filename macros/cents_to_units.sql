{#-
    An integer amount in minor currency units (cents, as payment APIs send them) as a
    numeric amount in currency units. The division happens on the numeric type, so it is
    exact on every engine.
-#}
{% macro cents_to_units(column) -%}
    {{ dbt.cast(dbt.cast(column, dbt.type_numeric()) ~ ' / 100', dbt.type_numeric()) }}
{%- endmacro %}
