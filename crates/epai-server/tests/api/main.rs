//! HTTP tests over a real socket against a real database.

mod accounts;
mod bad_input;
mod faults;
mod health;
mod helpers;
mod ingest;
mod isolation;
mod live_insights;
mod portal_api;
mod portal_pages;
mod predict;
mod rate_limit;
mod rate_limited_requests;
mod reads;
mod upgraded;
mod webhooks;
