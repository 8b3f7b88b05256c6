//! This replica's cache of the tenant reads that dashboards and widgets poll: insight pages and
//! usage summaries. A repeated read is answered without a trip to PostgreSQL, and a partner's
//! cached answers stop being served as soon as this replica learns that the partner's data
//! changed:
//! - insights, written by any process: from the `epai_insight_changed` notification, applied
//!   before the live streams of this replica hear of the change (a client that saw an insight on
//!   the stream reads it here too);
//! - events stored through this replica: after their commit, before the ingest request is
//!   answered (a client reads its own writes); events stored through another replica show in
//!   this replica's usage summaries after at most the usage TTL.
//!
//! While the notification listener is down nothing is served from the cache, and everything in
//! it is dropped when the listener subscribes again. Every entry is a copy of what a tenant
//! transaction (row-level security) returned to the same account: the cache decides nothing
//! about who may see what, and it never writes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use epai_domain::{AuthUserId, PartnerId};
use epai_store::{InsightFilter, InsightRecord, UsageDay};
use tokio::sync::OnceCell;

/// How long cached reads may be served when no change is heard of; zero turns a cache off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCacheSettings {
    /// Insight pages, refreshed by notifications: the TTL only bounds the damage of a
    /// notification connection that died without an error.
    pub insights_ttl: Duration,
    /// Usage summaries, whose event counts change with every event stored through any replica.
    pub usage_ttl: Duration,
}

impl Default for ReadCacheSettings {
    fn default() -> Self {
        Self {
            insights_ttl: Duration::from_secs(60),
            usage_ttl: Duration::from_secs(1),
        }
    }
}

/// One page of a partner's insights and how many match the filter in all.
#[derive(Debug)]
pub struct InsightList {
    pub insights: Vec<InsightRecord>,
    pub total: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InsightsKey {
    user: AuthUserId,
    partner: PartnerId,
    filter: InsightFilter,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UsageKey {
    user: AuthUserId,
    partner: PartnerId,
    days: i32,
    /// The summary ends today: a new day is a new summary.
    today: NaiveDate,
}

pub struct ReadCache {
    insights: CachedReads<InsightsKey, InsightList>,
    usage: CachedReads<UsageKey, Vec<UsageDay>>,
}

impl ReadCache {
    pub fn new(settings: ReadCacheSettings) -> Self {
        Self {
            insights: CachedReads::new("insights", settings.insights_ttl, 32 << 20, |list| {
                list.insights
                    .iter()
                    .map(|i| {
                        i.content.as_str().len()
                            + i.metadata.as_ref().map_or(0, |m| m.as_str().len())
                            + 256
                    })
                    .sum()
            }),
            usage: CachedReads::new("usage", settings.usage_ttl, 4 << 20, |days| {
                days.len() * std::mem::size_of::<UsageDay>()
            }),
        }
    }

    /// The page `filter` selects for `user` of `partner`, from the cache or from `load`.
    pub async fn insights<E>(
        &self,
        user: AuthUserId,
        partner: PartnerId,
        filter: &InsightFilter,
        load: impl AsyncFnOnce() -> Result<InsightList, E>,
    ) -> Result<Arc<InsightList>, E> {
        let key = InsightsKey {
            user,
            partner,
            filter: filter.clone(),
        };
        self.insights.get_or_load(key, partner, load).await
    }

    /// The usage summary of `days` days ending `today`, from the cache or from `load`.
    pub async fn usage<E>(
        &self,
        user: AuthUserId,
        partner: PartnerId,
        days: i32,
        today: NaiveDate,
        load: impl AsyncFnOnce() -> Result<Vec<UsageDay>, E>,
    ) -> Result<Arc<Vec<UsageDay>>, E> {
        let key = UsageKey {
            user,
            partner,
            days,
            today,
        };
        self.usage.get_or_load(key, partner, load).await
    }

    /// One of the partner's insights was written: its pages and its usage are out of date.
    pub fn insight_changed(&self, partner: PartnerId) {
        self.insights.invalidate(partner);
        self.usage.invalidate(partner);
    }

    /// Events of the partner were committed through this replica.
    pub fn events_stored(&self, partner: PartnerId) {
        self.usage.invalidate(partner);
    }

    /// Changes may go unannounced from now on: read through until [`ReadCache::resume`].
    pub fn pause(&self) {
        self.insights.pause();
        self.usage.pause();
    }

    /// Changes are announced again; what was cached before may have changed meanwhile.
    pub fn resume(&self) {
        self.insights.resume();
        self.usage.resume();
    }
}

/// One kind of cached read. Every entry carries the partner's stamp from before its load began;
/// it is served only while that is still the partner's stamp. A change takes a new stamp, so an
/// answer loaded concurrently with a change is never served, whichever finishes first. Readers
/// of an entry still loading wait for that load instead of starting their own (when a summary
/// expires, 32 clients asking for it make one query, not 32).
struct CachedReads<K, V> {
    kind: &'static str,
    entries: Option<moka::sync::Cache<K, Stamped<V>>>,
    stamps: Mutex<Stamps>,
}

struct Stamped<V> {
    stamp: u64,
    value: Arc<OnceCell<Arc<V>>>,
}

impl<V> Clone for Stamped<V> {
    fn clone(&self) -> Self {
        Self {
            stamp: self.stamp,
            value: self.value.clone(),
        }
    }
}

#[derive(Default)]
struct Stamps {
    /// The last stamp handed out.
    last: u64,
    /// The stamp of every partner not in `partners`: raised when everything is dropped.
    floor: u64,
    /// Partners changed since `floor` was raised (so each stamp here is newer than `floor`).
    partners: HashMap<PartnerId, u64>,
    listening: bool,
}

impl Stamps {
    fn current(&self, partner: PartnerId) -> Option<u64> {
        self.listening
            .then(|| self.partners.get(&partner).copied().unwrap_or(self.floor))
    }

    fn fresh(&mut self) -> u64 {
        self.last += 1;
        self.last
    }
}

/// What an entry weighs while its value is still loading.
const LOADING_WEIGHT: u32 = 1024;

impl<K, V> CachedReads<K, V>
where
    K: Clone + Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn new(kind: &'static str, ttl: Duration, max_bytes: u64, weigh: fn(&V) -> usize) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |_, stamped: &Stamped<V>| {
                    stamped.value.get().map_or(LOADING_WEIGHT, |value| {
                        u32::try_from(weigh(value)).unwrap_or(u32::MAX)
                    })
                })
                .time_to_live(ttl)
                .build()
        });
        Self {
            kind,
            entries,
            stamps: Mutex::new(Stamps::default()),
        }
    }

    fn stamp(&self, partner: PartnerId) -> Option<u64> {
        self.stamps.lock().ok()?.current(partner)
    }

    async fn get_or_load<E>(
        &self,
        key: K,
        partner: PartnerId,
        load: impl AsyncFnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let (Some(entries), Some(stamp)) = (&self.entries, self.stamp(partner)) else {
            metrics::counter!("epai_read_cache_total", "read" => self.kind, "outcome" => "bypass")
                .increment(1);
            return load().await.map(Arc::new);
        };
        let entry = entries
            .entry_by_ref(&key)
            .or_insert_with_if(
                || Stamped {
                    stamp,
                    value: Arc::new(OnceCell::new()),
                },
                |cached| cached.stamp != stamp,
            )
            .into_value();
        let mut loaded = false;
        let value = entry
            .value
            .get_or_try_init(async || {
                loaded = true;
                load().await.map(Arc::new)
            })
            .await?
            .clone();
        let outcome = if loaded { "miss" } else { "hit" };
        metrics::counter!("epai_read_cache_total", "read" => self.kind, "outcome" => outcome)
            .increment(1);
        // Stored again so that the cache weighs the loaded value, unless already replaced.
        if loaded
            && entries
                .get(&key)
                .is_some_and(|cached| Arc::ptr_eq(&cached.value, &entry.value))
        {
            entries.insert(key, entry);
        }
        Ok(value)
    }

    fn invalidate(&self, partner: PartnerId) {
        if let Ok(mut stamps) = self.stamps.lock() {
            let stamp = stamps.fresh();
            stamps.partners.insert(partner, stamp);
        }
    }

    fn pause(&self) {
        if let Ok(mut stamps) = self.stamps.lock() {
            stamps.listening = false;
        }
    }

    fn resume(&self) {
        if let Ok(mut stamps) = self.stamps.lock() {
            stamps.floor = stamps.fresh();
            stamps.partners.clear();
            stamps.listening = true;
        }
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn partner() -> PartnerId {
        PartnerId::from(uuid::Uuid::now_v7())
    }

    /// A cache whose loads count themselves and answer the count.
    struct Counted {
        reads: CachedReads<&'static str, usize>,
        loads: AtomicUsize,
    }

    impl Counted {
        fn new(ttl: Duration) -> Self {
            let reads = CachedReads::new("test", ttl, 1 << 20, |_| 1);
            reads.resume();
            Self {
                reads,
                loads: AtomicUsize::new(0),
            }
        }

        async fn read(&self, key: &'static str, partner: PartnerId) -> usize {
            let loaded = self
                .reads
                .get_or_load(key, partner, async || {
                    Ok::<_, ()>(self.loads.fetch_add(1, Ordering::SeqCst) + 1)
                })
                .await
                .unwrap();
            *loaded
        }
    }

    #[tokio::test]
    async fn repeated_reads_are_served_until_the_partner_changes() {
        let cache = Counted::new(Duration::from_secs(60));
        let (acme, rival) = (partner(), partner());
        assert_eq!(cache.read("page", acme).await, 1);
        assert_eq!(cache.read("page", acme).await, 1);
        assert_eq!(cache.read("other page", acme).await, 2);
        assert_eq!(
            cache.read("page", rival).await,
            1,
            "same key, other partner"
        );

        cache.reads.invalidate(rival);
        assert_eq!(cache.read("page", acme).await, 1, "a rival's change");
        cache.reads.invalidate(acme);
        assert_eq!(cache.read("page", acme).await, 3);
        assert_eq!(cache.read("other page", acme).await, 4);
        assert_eq!(cache.read("page", acme).await, 3);
    }

    #[tokio::test]
    async fn an_answer_loaded_while_the_partner_changed_is_not_served() {
        let cache = Counted::new(Duration::from_secs(60));
        let acme = partner();
        let stale = cache
            .reads
            .get_or_load("page", acme, async || {
                // The change lands while the old answer is being read.
                cache.reads.invalidate(acme);
                Ok::<_, ()>(100)
            })
            .await
            .unwrap();
        assert_eq!(*stale, 100, "the caller gets what it read");
        assert_eq!(cache.read("page", acme).await, 1, "the next read reloads");
        assert_eq!(cache.read("page", acme).await, 1);
    }

    #[tokio::test]
    async fn nothing_is_served_while_changes_go_unannounced() {
        let cache = Counted::new(Duration::from_secs(60));
        let acme = partner();
        assert_eq!(cache.read("page", acme).await, 1);
        cache.reads.pause();
        assert_eq!(cache.read("page", acme).await, 2);
        assert_eq!(cache.read("page", acme).await, 3);
        cache.reads.resume();
        assert_eq!(
            cache.read("page", acme).await,
            4,
            "dropped on resubscribing"
        );
        assert_eq!(cache.read("page", acme).await, 4);
    }

    #[tokio::test]
    async fn failed_loads_are_not_cached_and_a_zero_ttl_turns_the_cache_off() {
        let cache = Counted::new(Duration::from_secs(60));
        let acme = partner();
        let failed = cache
            .reads
            .get_or_load("page", acme, async || Err::<usize, _>("database down"))
            .await;
        assert_eq!(failed.unwrap_err(), "database down");
        assert_eq!(cache.read("page", acme).await, 1);

        let off = Counted::new(Duration::ZERO);
        assert_eq!(off.read("page", acme).await, 1);
        assert_eq!(off.read("page", acme).await, 2);
    }

    #[tokio::test]
    async fn concurrent_readers_of_a_missing_entry_share_one_load() {
        let cache = Counted::new(Duration::from_secs(60));
        let acme = partner();
        let gate = tokio::sync::Notify::new();
        let slow_load = cache.reads.get_or_load("page", acme, async || {
            gate.notified().await;
            Ok::<_, ()>(cache.loads.fetch_add(1, Ordering::SeqCst) + 1)
        });
        let (first, second, third, ()) = tokio::join!(
            slow_load,
            cache.read("page", acme),
            cache.read("page", acme),
            async { gate.notify_one() },
        );
        assert_eq!((*first.unwrap(), second, third), (1, 1, 1));
        assert_eq!(cache.loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_cache_reads_through_until_the_listener_subscribed() {
        let reads = CachedReads::<&str, usize>::new("test", Duration::from_secs(60), 1, |_| 1);
        assert_eq!(reads.stamp(partner()), None);
        reads.resume();
        assert!(reads.stamp(partner()).is_some());
    }
}
