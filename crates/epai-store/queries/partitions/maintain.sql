-- One maintenance pass over a partitioned table (see migrations/V11__monthly_partitions.sql):
-- $1 table, $2 months ahead, $3 retention in seconds (NULL: keep forever), $4 dry run, $5 now.
SELECT action, partition_name, range_start, range_end, row_count, detail
FROM epai_maintain_partitions($1, $2, make_interval(secs => $3::float8), $4, $5)
