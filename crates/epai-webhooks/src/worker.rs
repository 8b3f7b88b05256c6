//! Delivery workers: claim a delivery, sign it with the webhook's current (and, during a
//! rotation's grace period, previous) secret, send it, and record the attempt: done on 2xx,
//! otherwise retried with exponential backoff and jitter for about a day, then dead. Failures
//! that matter to the partner or the operator (a dead delivery, a webhook switched off, a
//! connection refused by the address policy) become security events.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use epai_store::notify::Notification;
use epai_store::webhooks::BuriedDelivery;
use epai_store::{ClaimedDelivery, DeliveryAttempt, SecurityEvent, ServiceRole, Store, StoreError};
use rand::Rng;
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::cipher::SecretCipher;
use crate::send::{Failure, Sender, SignedMessage};
use crate::signature::signature_header;

/// The wait after the `attempt`-th failure before the next attempt, without jitter:
/// 30 s × 3^(attempt − 1), at most 8 h. With `DELIVERY_ATTEMPTS` (10) attempts a delivery is
/// retried after 30 s, 1.5 min, 4.5 min, 13.5 min, 40.5 min, 2 h 1.5 min, 6 h 4.5 min, 8 h and
/// 8 h: the last attempt comes about 25 hours after the first.
pub fn retry_delay(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.max(1) - 1).unwrap_or(0).min(20);
    Duration::from_secs(30u64.saturating_mul(3u64.pow(exponent)).min(8 * 3600))
}

/// [`retry_delay`] scaled by `jitter` (drawn from 0.8 to 1.2), so that deliveries that failed
/// together do not all come back at once.
pub fn jittered_retry_delay(attempt: i32, jitter: f64) -> Duration {
    retry_delay(attempt).mul_f64(jitter.clamp(0.8, 1.2))
}

#[derive(Clone, Copy, Debug)]
pub struct DeliveryOptions {
    /// How long a claimed delivery stays the worker's; past that it is presumed abandoned and
    /// sent again. Longer than the send timeout.
    pub visibility: Duration,
    /// Deliveries in flight to one webhook, at most.
    pub per_webhook: i64,
    /// Deliveries in flight for one partner, at most.
    pub per_partner: i64,
    /// A webhook whose attempts have all failed for this long is switched off.
    pub disable_after: Duration,
    /// The longest an idle worker sleeps before looking at the queue again.
    pub idle_poll: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(60),
            per_webhook: 2,
            per_partner: 4,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// What one step of a delivery worker did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No delivery was due.
    Empty,
    /// The receiver answered 2xx.
    Delivered,
    /// The attempt failed; the next one is due at `at`.
    Retrying { at: DateTime<Utc> },
    /// The attempt failed and it was the last.
    Dead,
    /// The attempt ended after the delivery was taken over or deleted; nothing was recorded.
    NotHeld,
}

pub struct DeliveryWorker {
    store: Store,
    sender: Sender,
    cipher: Arc<SecretCipher>,
    id: String,
    options: DeliveryOptions,
}

impl DeliveryWorker {
    /// A worker with a unique id (process id and a random suffix).
    pub fn new(
        store: Store,
        sender: Sender,
        cipher: Arc<SecretCipher>,
        options: DeliveryOptions,
    ) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            store,
            sender,
            cipher,
            id: format!("webhooks-{}-{}", std::process::id(), &suffix[..8]),
            options,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends the delivery due at `now`, if any, and records how it went (the attempt's time is
    /// `now`; only the HTTP exchange itself takes real time). `Err` only when the queue itself
    /// cannot be reached.
    #[tracing::instrument(skip_all, fields(worker = %self.id))]
    pub async fn run_one(&self, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        let DeliveryOptions {
            visibility,
            per_webhook,
            per_partner,
            ..
        } = self.options;
        let claimed = self
            .store
            .as_service_role(async |s| {
                s.claim_delivery(&self.id, now, visibility, per_webhook, per_partner)
                    .await
            })
            .await?;
        let Some(delivery) = claimed else {
            return Ok(Outcome::Empty);
        };
        let span = tracing::info_span!("delivery", delivery.id = %delivery.id,
            partner.id = %delivery.partner_id, webhook.id = %delivery.webhook_id,
            attempt = delivery.attempt);
        self.deliver(&delivery, now).instrument(span).await
    }

    async fn deliver(
        &self,
        delivery: &ClaimedDelivery,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let timestamp = now.timestamp();
        let sent = match self.signature(delivery, now) {
            Ok(signature) => {
                let message = SignedMessage {
                    message_id: &delivery.message_id,
                    timestamp,
                    signature: &signature,
                    body: &delivery.body,
                };
                self.sender.send(&delivery.url, &message).await
            }
            Err(cause) => crate::send::Sent {
                status: None,
                latency: Duration::ZERO,
                failure: Some(Failure::Other(cause)),
            },
        };
        let attempt = DeliveryAttempt {
            attempt: delivery.attempt,
            at: now,
            response_status: sent.status.map(i32::from),
            latency_ms: Some(i32::try_from(sent.latency.as_millis()).unwrap_or(i32::MAX)),
            error: sent
                .failure
                .as_ref()
                .map(|f| f.describe(self.sender.options())),
        };
        let outcome = match &sent.failure {
            None => "delivered",
            Some(_) => "failed",
        };
        metrics::counter!("epai_webhook_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("epai_webhook_attempt_seconds").record(sent.latency.as_secs_f64());
        match sent.failure {
            None => self.record_success(delivery, &attempt, now).await,
            Some(failure) => self.record_failure(delivery, &attempt, &failure, now).await,
        }
    }

    /// The `webhook-signature` header: the current secret's signature, and the previous
    /// secret's while its grace period lasts.
    fn signature(&self, delivery: &ClaimedDelivery, now: DateTime<Utc>) -> Result<String, String> {
        let current = self
            .cipher
            .open(delivery.webhook_id, &delivery.secret)
            .map_err(|e| format!("cannot open the signing secret: {e}"))?;
        let mut secrets = vec![current];
        if let Some((sealed, until)) = &delivery.previous_secret
            && *until > now
        {
            match self.cipher.open(delivery.webhook_id, sealed) {
                Ok(previous) => secrets.push(previous),
                Err(e) => tracing::warn!(error = %e, "cannot open the previous signing secret"),
            }
        }
        Ok(signature_header(
            &secrets,
            &delivery.message_id,
            now.timestamp(),
            &delivery.body,
        ))
    }

    async fn record_success(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let held = self
            .store
            .as_service_role(async |s| s.succeed_delivery(delivery, attempt, now).await)
            .await?;
        if held {
            tracing::info!(status = ?attempt.response_status, latency_ms = ?attempt.latency_ms, "webhook delivered");
            Ok(Outcome::Delivered)
        } else {
            tracing::warn!("webhook delivered after another worker took the delivery over");
            Ok(Outcome::NotHeld)
        }
    }

    async fn record_failure(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &DeliveryAttempt,
        failure: &Failure,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let jitter = rand::rng().random_range(0.8..=1.2);
        let retry_at =
            epai_store::queue::after(now, jittered_retry_delay(delivery.attempt, jitter));
        let failing_since_limit = chrono::Duration::from_std(self.options.disable_after)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let error = attempt.error.clone().unwrap_or_default();
        let recorded = self
            .store
            .as_service_role(async |s| {
                let Some(recorded) = s
                    .fail_delivery(delivery, attempt, retry_at, failing_since_limit, now)
                    .await?
                else {
                    return Ok(None);
                };
                let event =
                    |event_type: &str, details| security_event(delivery, event_type, details, now);
                if matches!(failure, Failure::Refused(_)) {
                    s.record_security_event(&event(
                        "webhook_address_refused",
                        json!({ "webhook_id": delivery.webhook_id, "delivery_id": delivery.id }),
                    ))
                    .await?;
                }
                if recorded.retry_at.is_none() {
                    s.record_security_event(&event(
                        "webhook_delivery_dead",
                        json!({
                            "webhook_id": delivery.webhook_id,
                            "delivery_id": delivery.id,
                            "message_id": delivery.message_id,
                            "attempts": delivery.attempt,
                            "last_error": error,
                        }),
                    ))
                    .await?;
                }
                if recorded.webhook_switched_off {
                    s.record_security_event(&event(
                        "webhook_disabled",
                        json!({ "webhook_id": delivery.webhook_id, "reason": "failing" }),
                    ))
                    .await?;
                }
                Ok(Some(recorded))
            })
            .await?;
        let Some(recorded) = recorded else {
            tracing::warn!(%error, "webhook attempt failed after another worker took the delivery over");
            return Ok(Outcome::NotHeld);
        };
        if recorded.webhook_switched_off {
            tracing::warn!("webhook switched off: its attempts have failed for days");
        }
        Ok(match recorded.retry_at {
            Some(at) => {
                tracing::info!(%error, retry_at = %at, "webhook attempt failed");
                Outcome::Retrying { at }
            }
            None => {
                metrics::counter!("epai_webhook_dead_total").increment(1);
                tracing::warn!(%error, attempts = delivery.attempt, "webhook delivery is dead");
                Outcome::Dead
            }
        })
    }

    /// Sends deliveries until `shutdown` turns true (or its sender is dropped), sleeping only
    /// while nothing is due: until the next delivery is, `idle_poll`, or a wake-up on
    /// `wakeups`. An attempt in progress always finishes first.
    pub async fn run(&self, wakeups: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let woken = wakeups.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let wait = match self.run_one(Utc::now()).await {
                Ok(Outcome::Empty) => self.idle_wait().await,
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot reach the webhook queue");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    wait
                }
            };
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    async fn idle_wait(&self) -> Duration {
        let poll = self.options.idle_poll;
        match self
            .store
            .as_service_role(async |s| s.next_delivery_due().await)
            .await
        {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                // Due but not claimable: held elsewhere, or its endpoint is at its limit.
                .unwrap_or(Duration::from_millis(250))
                .clamp(Duration::from_millis(10), poll),
            Ok(None) | Err(_) => poll,
        }
    }
}

fn security_event(
    delivery: &ClaimedDelivery,
    event_type: &str,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> SecurityEvent {
    SecurityEvent {
        event_type: event_type.to_owned(),
        partner_id: Some(delivery.partner_id),
        user_id: None,
        ip_address: None,
        user_agent: None,
        details,
        created_at: now,
    }
}

/// Periodic upkeep of the delivery queue: announce API keys about to expire, bury deliveries
/// abandoned on their last attempt and delete finished ones after `retention`. Idempotent, so
/// every process may run it.
pub struct DeliveryUpkeep {
    store: Store,
    retention: Duration,
}

/// How long before a key expires `api_key.expiring` is sent (the portal warns as long before).
pub const KEY_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// What one round of upkeep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpkeepTick {
    pub keys_announced: usize,
    pub buried: usize,
    pub pruned: u64,
}

impl DeliveryUpkeep {
    /// Finished deliveries are kept 30 days by default.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

    pub fn new(store: Store, retention: Duration) -> Self {
        Self { store, retention }
    }

    pub async fn run_one(&self, now: DateTime<Utc>) -> Result<UpkeepTick, StoreError> {
        let retention = self.retention;
        self.store
            .as_service_role(async |s| {
                let buried = s.bury_abandoned_deliveries(now).await?;
                record_buried(s, &buried, now).await?;
                Ok(UpkeepTick {
                    keys_announced: s.announce_expiring_keys(KEY_EXPIRY_WARNING, now).await?,
                    buried: buried.len(),
                    pruned: s.prune_finished_deliveries(retention, now).await?,
                })
            })
            .await
    }

    /// Ticks every `interval` until `shutdown` turns true (or its sender is dropped).
    pub async fn run(&self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
            }
            match self.run_one(Utc::now()).await {
                Ok(tick) if tick != UpkeepTick::default() => {
                    tracing::info!(?tick, "webhook queue upkeep");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook queue upkeep failed"),
            }
        }
    }
}

async fn record_buried(
    s: &ServiceRole<'_>,
    buried: &[BuriedDelivery],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for delivery in buried {
        tracing::warn!(delivery.id = %delivery.id, "webhook delivery is dead: its last attempt never finished");
        s.record_security_event(&SecurityEvent {
            event_type: "webhook_delivery_dead".into(),
            partner_id: Some(delivery.partner_id),
            user_id: None,
            ip_address: None,
            user_agent: None,
            details: json!({
                "webhook_id": delivery.webhook_id,
                "delivery_id": delivery.id,
                "message_id": delivery.message_id,
                "attempts": delivery.attempts,
                "last_error": "the worker did not finish before its visibility timeout",
            }),
            created_at: now,
        })
        .await?;
    }
    Ok(())
}

/// Wakes every idle delivery worker waiting on `wakeups` whenever deliveries are queued (or the
/// notification connection came back). Runs until the process ends.
pub async fn wake_on_new_deliveries(store: Store, wakeups: Arc<Notify>) {
    let (sink, mut received) = mpsc::channel(64);
    let wake = async move {
        while let Some(notification) = received.recv().await {
            if matches!(
                notification,
                Notification::DeliveriesAvailable | Notification::Resubscribed
            ) {
                wakeups.notify_waiters();
            }
        }
    };
    tokio::join!(store.listen(sink), wake);
}

#[cfg(test)]
mod tests {
    use epai_store::webhooks::DELIVERY_ATTEMPTS;

    use super::*;

    #[test]
    fn the_schedule_spans_about_a_day_over_the_attempts() {
        let waits: Vec<u64> = (1..DELIVERY_ATTEMPTS)
            .map(|a| retry_delay(a).as_secs())
            .collect();
        assert_eq!(
            waits,
            [30, 90, 270, 810, 2430, 7290, 21_870, 28_800, 28_800]
        );
        let total: u64 = waits.iter().sum();
        assert!(
            (22 * 3600..=27 * 3600).contains(&total),
            "last attempt {total} s after the first"
        );
        assert_eq!(retry_delay(1000).as_secs(), 8 * 3600);
        assert_eq!(retry_delay(0).as_secs(), 30);
    }

    #[test]
    fn jitter_stays_within_a_fifth_either_way() {
        assert_eq!(jittered_retry_delay(1, 0.8).as_secs(), 24);
        assert_eq!(jittered_retry_delay(1, 1.2).as_secs(), 36);
        assert_eq!(jittered_retry_delay(1, 5.0).as_secs(), 36);
        assert_eq!(jittered_retry_delay(1, 0.0).as_secs(), 24);
    }
}
