-- order_id 4 has its whole amount discounted; order 5 has no email and a future date
select
    cast(order_id as integer) as order_id,
    cast(customer_id as integer) as customer_id,
    cast(status as varchar(20)) as status,
    cast(amount as numeric(12, 2)) as amount,
    cast(discount as numeric(12, 2)) as discount,
    current_timestamp + cast(ordered_offset as interval) as ordered_at,
    cast(email as varchar(100)) as email,
    cast(country_code as varchar(2)) as country_code
from (
    values
    (1, 10, 'paid', 20.00, 2.00, '-1 hour', 'anna@example.com', 'DE'),
    (2, 10, 'placed', 5.00, 0.00, '-2 days', 'ben@example.com', 'FR'),
    (3, 11, 'cancelled', 0.00, 0.00, '-40 days', 'chloe@example.com', 'NL'),
    (4, 12, 'paid', 12.50, 12.50, '-3 hours', 'david@example', 'DE'),
    (5, 12, 'refunded', 30.00, 1.00, '+2 days', null, 'de')
) as fixture (
    order_id, customer_id, status, amount, discount, ordered_offset, email, country_code
)
