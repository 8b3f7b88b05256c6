SELECT date, event_count, insight_count
FROM get_partner_usage_summary($1)
