-- Finished deliveries are history; those that finished before $1 go.
DELETE FROM webhook_deliveries
WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at < $1
