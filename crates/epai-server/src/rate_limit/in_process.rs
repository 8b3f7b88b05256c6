use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;

use super::{Clock, Decision, Subject, emission_interval};

type KeyedLimiter =
    governor::RateLimiter<Subject, DashMapStateStore<Subject>, Clock, StateInformationMiddleware>;

/// Idle subjects are dropped after this many checks, so memory follows the subjects active in
/// the last while rather than every key and address ever seen.
pub(super) const PRUNE_EVERY_CHECKS: u64 = 10_000;

/// GCRA state in this process's memory: one keyed limiter per distinct quota, so a partner
/// with an override is counted against its own quota and shares nothing with the default.
#[derive(Clone)]
pub struct InProcessLimiter(Arc<Inner>);

struct Inner {
    clock: Clock,
    by_quota: RwLock<HashMap<NonZeroU32, KeyedLimiter>>,
    checks: AtomicU64,
}

impl InProcessLimiter {
    pub fn new(clock: Clock) -> Self {
        Self(Arc::new(Inner {
            clock,
            by_quota: RwLock::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }))
    }

    pub(super) fn check(&self, subject: &Subject, limit: NonZeroU32) -> Decision {
        if self.0.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_CHECKS
            == PRUNE_EVERY_CHECKS - 1
        {
            self.prune();
        }
        let interval = emission_interval(limit);
        let outcome = {
            let limiters = self
                .0
                .by_quota
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            match limiters.get(&limit) {
                Some(limiter) => limiter.check_key(subject),
                None => {
                    drop(limiters);
                    let mut limiters = self
                        .0
                        .by_quota
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    limiters
                        .entry(limit)
                        .or_insert_with(|| {
                            governor::RateLimiter::dashmap_with_clock(
                                governor::Quota::per_minute(limit),
                                self.0.clock.clone(),
                            )
                            .with_middleware::<StateInformationMiddleware>()
                        })
                        .check_key(subject)
                }
            }
        };
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    policy: subject.policy(),
                    limit: limit.get(),
                    remaining,
                    // Governor does not expose the arrival time itself; counting the spent
                    // requests gives it to within one interval, rounded up.
                    reset_after: interval * (limit.get() - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.0.clock.now());
                Decision {
                    allowed: false,
                    policy: subject.policy(),
                    limit: limit.get(),
                    remaining: 0,
                    reset_after: retry_after + interval * (limit.get() - 1),
                    retry_after: Some(retry_after),
                }
            }
        }
    }

    /// Forgets subjects whose budget has fully refilled (they are indistinguishable from new
    /// ones), and limiters left without subjects, such as those of removed overrides.
    pub fn prune(&self) {
        let mut limiters = self
            .0
            .by_quota
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        limiters.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
    }

    /// How many subjects currently hold state.
    pub fn tracked_subjects(&self) -> usize {
        self.0
            .by_quota
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(KeyedLimiter::len)
            .sum()
    }
}
