-- One migration at a time per database, also across processes and replicas.
SELECT pg_advisory_lock(hashtext('epai.migrate'))
