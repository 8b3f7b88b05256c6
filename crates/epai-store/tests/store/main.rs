//! Integration tests of the store against a real PostgreSQL server: every test gets a fresh
//! database (see `epai_store::testing`).

mod daily_counts;
mod embedded;
mod features;
mod functions;
mod group_commit;
mod isolation;
mod limits;
mod partitions;
mod queue;
mod rate_limits;
mod seed_bugs;
mod support;
mod upgrade;
