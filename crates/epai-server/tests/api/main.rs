//! HTTP tests over a real socket against a real database.

mod health;
mod helpers;
mod rate_limit;
