SELECT pg_advisory_unlock(hashtext('epai.migrate'))
