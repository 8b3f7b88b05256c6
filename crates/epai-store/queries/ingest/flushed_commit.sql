-- Taking a transaction id makes this statement's commit write a commit record that must reach
-- the disk before the answer (synchronous_commit): a commit flush, timed, changing no table.
SELECT pg_current_xact_id()
