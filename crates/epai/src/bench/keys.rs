//! API key verification at scale: many stored keys, the server's verifier on a cache hit and on
//! a miss, and for comparison the original scheme (bcrypt hashes, one scan per verification).

use std::time::{Duration, Instant};

use anyhow::Context;
use epai_domain::{API_KEY_PREFIX, ApiKey};
use epai_server::KeyVerifier;
use epai_store::{Store, StoreOptions};
use rand::Rng;
use serde::Serialize;
use uuid::Uuid;

use super::latency::{Latencies, LatencySummary};
use super::scratch::ScratchDatabase;

/// Rows per bulk insert while creating keys.
const INSERT_CHUNK: usize = 10_000;
/// How many keys the original design's scheme is measured over.
pub const BCRYPT_KEYS: usize = 300;

pub struct KeyPlan {
    pub keys: usize,
    pub uncached_samples: usize,
    pub cached_samples: usize,
    pub bcrypt_verifications: usize,
}

#[derive(Debug, Serialize)]
pub struct KeyFigures {
    pub stored_keys: usize,
    pub setup_seconds: f64,
    pub cached: LatencySummary,
    pub uncached: LatencySummary,
    pub failures: u64,
    pub bcrypt_stored_keys: usize,
    pub bcrypt_verifications: usize,
    pub bcrypt_mean_ms: f64,
}

pub async fn measure(scratch: &ScratchDatabase, plan: &KeyPlan) -> anyhow::Result<KeyFigures> {
    let setup = Instant::now();
    let keys = store_keys(scratch, plan.keys).await?;
    let setup_seconds = setup.elapsed().as_secs_f64();

    let store = Store::connect(scratch.target(), &StoreOptions::default())?;
    let verifier = KeyVerifier::default();
    let mut failures = 0;
    let mut verify = async |key: &ApiKey, latencies: &mut Latencies| {
        let started = Instant::now();
        let outcome = verifier.verify(&store, key, chrono::Utc::now()).await;
        latencies.record(started.elapsed());
        if outcome.is_err() {
            failures += 1;
        }
    };
    let (hot, rest) = keys.split_first().context("no keys were created")?;
    // Opens the pool's connection and caches the hot key; not measured.
    verify(hot, &mut Latencies::default()).await;
    let mut uncached = Latencies::default();
    for key in rest.iter().take(plan.uncached_samples) {
        verify(key, &mut uncached).await;
    }
    let mut cached = Latencies::default();
    for _ in 0..plan.cached_samples {
        verify(hot, &mut cached).await;
    }

    let bcrypt = bcrypt_scan(scratch, plan.bcrypt_verifications).await?;
    Ok(KeyFigures {
        stored_keys: keys.len(),
        setup_seconds,
        cached: cached.summary(),
        uncached: uncached.summary(),
        failures,
        bcrypt_stored_keys: BCRYPT_KEYS,
        bcrypt_verifications: plan.bcrypt_verifications,
        bcrypt_mean_ms: bcrypt.as_secs_f64() * 1000.0,
    })
}

/// A key of the shape EPAI issues: `epai_` and 32 random base64url characters.
fn random_key(rng: &mut impl Rng) -> ApiKey {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let secret: String = (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    ApiKey::parse(&format!("{API_KEY_PREFIX}{secret}")).expect("generated keys are well formed")
}

/// Creates `count` partners with one current key each, in bulk.
async fn store_keys(scratch: &ScratchDatabase, count: usize) -> anyhow::Result<Vec<ApiKey>> {
    let mut rng = rand::rng();
    let keys: Vec<ApiKey> = (0..count).map(|_| random_key(&mut rng)).collect();
    let admin = scratch.admin().await?;
    let insert_partners = admin
        .prepare(
            "INSERT INTO partners (id, name, email) \
             SELECT id, 'Bench partner ' || id, 'bench-' || id || '@example.com' \
             FROM unnest($1::uuid[]) AS t(id)",
        )
        .await?;
    let insert_keys = admin
        .prepare(
            "INSERT INTO api_keys (partner_id, key_hash, key_prefix, expires_at) \
             SELECT partner_id, key_hash, key_prefix, now() + interval '90 days' \
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(partner_id, key_hash, key_prefix)",
        )
        .await?;
    for chunk in keys.chunks(INSERT_CHUNK) {
        let partners: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
        let hashes: Vec<String> = chunk.iter().map(|k| k.hash().as_str().to_owned()).collect();
        let prefixes: Vec<&str> = chunk.iter().map(ApiKey::display_prefix).collect();
        admin
            .execute(&insert_partners, &[&partners])
            .await
            .context("cannot create benchmark partners")?;
        admin
            .execute(&insert_keys, &[&partners, &hashes, &prefixes])
            .await
            .context("cannot create benchmark keys")?;
    }
    admin.batch_execute("ANALYZE partners, api_keys").await?;
    Ok(keys)
}

/// Mean time of one verification under the original scheme: bcrypt hashes (pgcrypto,
/// `gen_salt('bf')`), and no index can help, so every verification hashes against every row.
async fn bcrypt_scan(scratch: &ScratchDatabase, verifications: usize) -> anyhow::Result<Duration> {
    let mut rng = rand::rng();
    let keys: Vec<String> = (0..BCRYPT_KEYS)
        .map(|_| random_key(&mut rng).reveal().to_owned())
        .collect();
    let admin = scratch.admin().await?;
    admin
        .batch_execute("CREATE TABLE bench_bcrypt_keys (key_hash TEXT NOT NULL)")
        .await?;
    admin
        .execute(
            "INSERT INTO bench_bcrypt_keys SELECT crypt(k, gen_salt('bf')) FROM unnest($1::text[]) AS k",
            &[&keys],
        )
        .await
        .context("cannot create bcrypt hashes (is pgcrypto installed?)")?;
    let find = admin
        .prepare("SELECT count(*) FROM bench_bcrypt_keys WHERE key_hash = crypt($1, key_hash)")
        .await?;
    let started = Instant::now();
    for key in keys.iter().rev().take(verifications) {
        let found: i64 = admin.query_one(&find, &[key]).await?.get(0);
        anyhow::ensure!(found == 1, "bcrypt verification found {found} keys");
    }
    Ok(started.elapsed() / u32::try_from(verifications.max(1)).unwrap_or(u32::MAX))
}
