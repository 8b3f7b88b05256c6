//! `epai bench --forecast`: how long a partner's volume forecast takes once it has many events.
//!
//! Loads N events for one partner (four event types, spread over the 120 days the forecast
//! reads, weekday-heavy) with one `INSERT ... SELECT generate_series`, lays them out in monthly
//! partitions as `epai maintenance` would, vacuums (as autovacuum would after a bulk load, so
//! the visibility map allows index-only scans), and then times what a worker does for the
//! `event_volume_forecast` job: feature extraction in SQL, then the forecast of every type.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use epai_store::{RetentionPolicy, Store};
use epai_worker::{InsightModel, VolumeForecast};
use serde::Serialize;

use super::scratch::ScratchDatabase;

/// Timed runs after one untimed warm-up run.
const RUNS: usize = 5;

/// N events of partner $1 over the 120 days before now, a quarter of them each of four types,
/// more on weekdays; `created_at` equals `occurred_at`, as for events ingested as they happen.
const LOAD_EVENTS: &str = "INSERT INTO ingestion_events \
     (partner_id, event_type, data, source, version, occurred_at, created_at) \
     SELECT $1, (ARRAY['page_view', 'user_engagement', 'lead', 'sales_transaction'])[1 + g % 4], \
            '{}'::jsonb, 'bench', '1', t.at, t.at \
     FROM generate_series(1, $2::bigint) AS g \
     CROSS JOIN LATERAL (SELECT now() - (119.99 * random()) * interval '1 day' AS at) AS t \
     WHERE extract(isodow FROM t.at) < 6 OR random() < 0.7";

#[derive(Debug, Serialize)]
pub struct ForecastFigures {
    pub events_requested: u64,
    pub events_stored: i64,
    pub load_seconds: f64,
    pub vacuum_seconds: f64,
    pub runs: usize,
    pub event_types: usize,
    /// Per run: the daily counts query, the forecasts, and both.
    pub features_ms: Summary,
    pub forecast_ms: Summary,
    pub total_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Summary {
            min: ms(samples[0]),
            median: ms(samples[samples.len() / 2]),
            max: ms(samples[samples.len() - 1]),
        }
    }
}

impl ForecastFigures {
    pub fn table(&self) -> String {
        let row = |name: &str, s: &Summary| {
            format!(
                "  {name:<26} {:>9.1} {:>9.1} {:>9.1}\n",
                s.min, s.median, s.max
            )
        };
        format!(
            "forecast for one partner with {} events ({} types; loaded in {:.1} s, vacuumed in {:.1} s)\n\
             \x20 {:<26} {:>9} {:>9} {:>9}\n{}{}{}",
            self.events_stored,
            self.event_types,
            self.load_seconds,
            self.vacuum_seconds,
            format!("ms over {} runs", self.runs),
            "min",
            "median",
            "max",
            row("daily counts (SQL)", &self.features_ms),
            row("forecasts (engine)", &self.forecast_ms),
            row("total", &self.total_ms),
        )
    }
}

pub async fn measure(
    scratch: &ScratchDatabase,
    store: &Store,
    partner: uuid::Uuid,
    events: u64,
) -> anyhow::Result<ForecastFigures> {
    let admin = scratch.admin().await?;
    let partner_id = epai_domain::PartnerId::new(partner);
    let started = Instant::now();
    let count = i64::try_from(events).context("--forecast-events is too large")?;
    admin
        .execute(LOAD_EVENTS, &[&partner, &count])
        .await
        .context("cannot load the events")?;
    let load_seconds = started.elapsed().as_secs_f64();
    let policy = RetentionPolicy {
        logs: None,
        events: None,
        months_ahead: 1,
    };
    store
        .maintain_partitions(&policy, false, Utc::now())
        .await
        .context("cannot lay the events out in monthly partitions")?;
    let started = Instant::now();
    admin
        .batch_execute("VACUUM ANALYZE ingestion_events")
        .await
        .context("cannot vacuum the events")?;
    let vacuum_seconds = started.elapsed().as_secs_f64();
    let events_stored: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE partner_id = $1",
            &[&partner],
        )
        .await?
        .get(0);

    let model = VolumeForecast;
    let (mut features_ms, mut forecast_ms, mut total_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut event_types = 0;
    for run in 0..=RUNS {
        let now = Utc::now();
        let started = Instant::now();
        let features = store
            .as_service_role(async |s| s.partner_features(partner_id, model.features(), now).await)
            .await?;
        let loaded = started.elapsed();
        let insights = model
            .compute(&features, now)
            .map_err(|e| anyhow::anyhow!("the forecast failed: {e}"))?;
        let total = started.elapsed();
        event_types = insights.len();
        if run > 0 {
            features_ms.push(loaded);
            forecast_ms.push(total - loaded);
            total_ms.push(total);
        }
    }
    Ok(ForecastFigures {
        events_requested: events,
        events_stored,
        load_seconds,
        vacuum_seconds,
        runs: RUNS,
        event_types,
        features_ms: Summary::of(features_ms),
        forecast_ms: Summary::of(forecast_ms),
        total_ms: Summary::of(total_ms),
    })
}
