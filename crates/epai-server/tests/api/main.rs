//! HTTP tests over a real socket against a real database.

mod accounts;
mod health;
mod helpers;
