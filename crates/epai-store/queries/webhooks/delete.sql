-- Deletes webhook $1 and, with it, its deliveries.
DELETE FROM webhooks WHERE id = $1 RETURNING id
