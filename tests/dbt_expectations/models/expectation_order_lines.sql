-- two lines for order 1, one for orders 2-4, none for order 5; (order_id, line) repeats once
select
    cast(order_id as integer) as order_id,
    cast(line as integer) as line,
    cast(sku as varchar(20)) as sku
from (
    values
    (1, 1, 'SKU-1'),
    (1, 2, 'SKU-2'),
    (2, 1, 'SKU-1'),
    (3, 1, 'SKU-3'),
    (4, 1, 'SKU-4'),
    (4, 1, 'SKU-5'),
    (null, null, 'SKU-6'),
    (null, null, 'SKU-7'),
    (null, 1, 'SKU-8'),
    (null, 1, 'SKU-9')
) as fixture (order_id, line, sku)
