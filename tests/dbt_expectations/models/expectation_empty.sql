select cast(1 as integer) as order_id, current_timestamp as ordered_at
where 1 = 0
