-- The grain of rpt_marketing_performance: one row per report_date and channel.
select
    report_date,
    channel,
    count(*) as row_count

from {{ ref('rpt_marketing_performance') }}
group by report_date, channel
having count(*) > 1
