-- Ingest writers act for any partner for their whole session (a named system path: the
-- partner of every row comes from a verified API key).
SET ROLE service_role
