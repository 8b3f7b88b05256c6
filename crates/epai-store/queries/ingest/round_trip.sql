-- Nothing to do: the time of a round trip, against which a flushed commit is timed.
SELECT 1
