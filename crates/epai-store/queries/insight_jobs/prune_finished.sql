-- Finished jobs are history; completed and dead jobs older than $1 go.
DELETE FROM insight_jobs
WHERE state IN ('completed', 'dead') AND finished_at < $1
