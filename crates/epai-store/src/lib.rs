//! EPAI's PostgreSQL layer.
//!
//! Owns the schema (refinery migrations in `migrations/`), every SQL statement (named queries in
//! `queries/`), the connection pool, the tenant-scoped transactions that make row-level security
//! do the isolation, and the private PostgreSQL cluster `epai serve` runs when no `DATABASE_URL`
//! is given.
//!
//! Tenant-facing reads and writes are reachable only through [`Store::as_user`], which runs them
//! as role `authenticated` with the user's claims, so the seed's policies decide what is visible.
//! The few system paths that must act for any partner go through [`Store::as_service_role`] and
//! take partner ids only from verified credentials.
//!
//! Webhook deliveries are a second queue (`webhooks`), filled in the transactions that write
//! insights.
//!
//! Must not know about HTTP: no request, response or status code types in here.

mod accounts;
mod activity;
mod connect;
mod custom_models;
pub mod embedded;
mod error;
mod features;
mod ingest;
mod migrate;
pub mod notify;
mod partitions;
pub mod portal;
mod prepared;
mod queries;
pub mod queue;
mod security_events;
mod service;
mod stored_json;
mod tenant;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod webhooks;

pub use accounts::{
    AccountUser, LoginCandidate, NewSession, REVOKED_BY_LOGOUT, REVOKED_FOR_REUSE, RefreshOutcome,
};
pub use activity::{ActivityRecorder, LoggedBody, RequestLog, SecurityEvent};
pub use connect::{DatabaseTarget, KeyPolicy, RecomputeOnIngest, Store, StoreOptions};
pub use custom_models::{CustomModelRecord, NewCustomModel};
pub use error::StoreError;
pub use features::{
    ActiveDay, DailySeries, EntityActivity, EventSample, FeatureRequest, NewInsight,
    PartnerFeatures,
};
pub use ingest::{IngestOptions, IngestWriter, small_commits_for_flush, time_commit_flush};
pub use migrate::{MigrationStatus, latest_migration_version, migrate, migrate_to};
pub use partitions::{PARTITIONED_TABLES, PartitionAction, PartitionChange, RetentionPolicy};
pub use queue::{ClaimedJob, FailedJob};
pub use security_events::LoginFailures;
pub use service::{IdempotencyClaim, NewEvent, NewPartner, ServiceRole, StoredKey};
pub use stored_json::StoredJson;
pub use tenant::{
    ApiKeyStatus, EventFilter, EventRecord, InsightFilter, InsightRecord, LogDetail, LogEntry,
    ModelRecord, PartnerRecord, Tenant, UsageDay, UsageTotals,
};
pub use webhooks::{
    ClaimedDelivery, DeliveryAttempt, DeliveryFailure, DeliveryRecord, DeliveryState, NewWebhook,
    SealedSecret, WebhookChange, WebhookRecord,
};
