//! Everything one run measured, as a table for people and as JSON for tools.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::HttpFigures;
use super::keys::KeyFigures;
use super::postgres::{PostgresFigures, Workload};
use super::system;

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub phase_seconds: u64,
    pub postgres: Vec<PostgresFigures>,
    pub http: Vec<HttpFigures>,
    pub keys: KeyFigures,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mb: Option<u64>,
    pub postgres_version: String,
    pub epai_version: &'static str,
}

/// A DESIGN.md §7 target: the measured value next to what it should be.
#[derive(Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub goal: &'static str,
    pub met: Option<bool>,
}

impl Report {
    pub fn new(
        phase: Duration,
        postgres_version: String,
        postgres: Vec<PostgresFigures>,
        http: Vec<HttpFigures>,
        keys: KeyFigures,
    ) -> Self {
        let mut report = Self {
            machine: Machine {
                cores: system::cores(),
                memory_mb: system::memory_total_mb(),
                postgres_version,
                epai_version: env!("CARGO_PKG_VERSION"),
            },
            phase_seconds: phase.as_secs(),
            postgres,
            http,
            keys,
            targets: Vec::new(),
        };
        report.targets = report.compute_targets();
        report
    }

    fn postgres_rate(&self, workload: Workload, connections: usize) -> Option<f64> {
        self.postgres
            .iter()
            .find(|f| f.workload == workload && f.connections == connections)
            .map(|f| f.rows_per_second)
    }

    fn single_event_rate(&self, connections: usize) -> Option<f64> {
        self.http
            .iter()
            .find(|f| f.events_per_request == 1 && f.connections == connections)
            .map(|f| f.events_per_second)
    }

    fn compute_targets(&self) -> Vec<Target> {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let best = |rates: Vec<f64>| rates.into_iter().reduce(f64::max);
        let unnest_ceiling = best(
            self.postgres
                .iter()
                .filter(|f| f.workload == Workload::UnnestBatch)
                .map(|f| f.rows_per_second)
                .collect(),
        );
        let best_batch = best(
            self.http
                .iter()
                .filter(|f| f.events_per_request > 1)
                .map(|f| f.events_per_second)
                .collect(),
        );
        let peak_rss = best(
            self.http
                .iter()
                .filter_map(|f| f.server_memory.map(|m| m.peak_rss_mb))
                .collect(),
        );
        let single_32 = ratio(
            self.single_event_rate(32),
            self.postgres_rate(Workload::InsertPerTransaction, 32),
        );
        let single_8 = ratio(
            self.single_event_rate(8),
            self.postgres_rate(Workload::InsertPerTransaction, 8),
        );
        let cached_p99 = (self.keys.cached.samples > 0).then_some(self.keys.cached.p99_us as f64);
        vec![
            Target {
                name: "single-event HTTP ÷ PostgreSQL one INSERT per transaction, 32 connections",
                value: single_32,
                unit: "x",
                goal: ">= 2",
                met: single_32.map(|r| r >= 2.0),
            },
            Target {
                name: "single-event HTTP ÷ PostgreSQL one INSERT per transaction, 8 connections",
                value: single_8,
                unit: "x",
                goal: "(reference)",
                met: None,
            },
            Target {
                name: "best batch HTTP ÷ best INSERT ... SELECT FROM unnest",
                value: ratio(best_batch, unnest_ceiling),
                unit: "x",
                goal: ">= 0.7",
                met: ratio(best_batch, unnest_ceiling).map(|r| r >= 0.7),
            },
            Target {
                name: "key verification p99, cached",
                value: cached_p99,
                unit: "µs",
                goal: "< 50",
                met: cached_p99.map(|p| p < 50.0),
            },
            Target {
                name: "server peak RSS under ingest load",
                value: peak_rss,
                unit: "MB",
                goal: "< 150",
                met: peak_rss.map(|mb| mb < 150.0),
            },
        ]
    }

    /// Failed requests or acknowledged events missing from the table.
    pub fn has_failures(&self) -> bool {
        self.http
            .iter()
            .any(|f| f.errors > 0 || f.lost_events() > 0)
            || self.postgres.iter().any(|f| f.errors > 0)
            || self.keys.failures > 0
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        self.write_table(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        let m = &self.machine;
        writeln!(out)?;
        writeln!(
            out,
            "EPAI {} benchmark — {} cores, {} MB memory, PostgreSQL {}, {} s per phase",
            m.epai_version,
            m.cores,
            m.memory_mb.map_or("?".into(), |mb| mb.to_string()),
            m.postgres_version,
            self.phase_seconds
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "PostgreSQL alone (table ingestion_events, ~200-byte data)"
        )?;
        writeln!(
            out,
            "  {:<46} {:>5} {:>12} {:>10} {:>7} {:>6}  tool",
            "workload", "conns", "rows/s", "mean ms", "errors", "cpu%"
        )?;
        for f in &self.postgres {
            writeln!(
                out,
                "  {:<46} {:>5} {:>12.0} {:>10.2} {:>7} {:>6}  {}",
                f.workload.describe(),
                f.connections,
                f.rows_per_second,
                f.mean_latency_ms,
                f.errors,
                percent(f.cpu.map(|c| c.machine_busy_percent)),
                f.tool
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "EPAI over HTTP (keep-alive, epai serve as a child process)"
        )?;
        writeln!(
            out,
            "  {:<28} {:>5} {:>9} {:>10} {:>8} {:>8} {:>8} {:>6} {:>10} {:>7} {:>6} {:>6}",
            "request",
            "conns",
            "req/s",
            "events/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "lost",
            "RSS MB",
            "srv cpu",
            "cpu%"
        )?;
        for f in &self.http {
            let request = format!("POST {} x{}", f.path, f.events_per_request);
            writeln!(
                out,
                "  {:<28} {:>5} {:>9.0} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>10} {:>7} {:>6} {:>6}",
                request,
                f.connections,
                f.requests_per_second,
                f.events_per_second,
                f.latency_ms.p50,
                f.latency_ms.p99,
                f.latency_ms.p999,
                f.errors,
                f.lost_events(),
                f.server_memory
                    .map_or("?".into(), |mem| format!("{:.0}", mem.peak_rss_mb)),
                f.cpu
                    .and_then(|c| c.process_cores)
                    .map_or("?".into(), |cores| format!("{cores:.2}")),
                percent(f.cpu.map(|c| c.machine_busy_percent)),
            )?;
        }
        writeln!(
            out,
            "  (RSS MB: the server's peak resident memory so far; srv cpu: cores the server used; \
             cpu%: whole machine busy)"
        )?;
        writeln!(out)?;
        let k = &self.keys;
        writeln!(
            out,
            "Key verification ({} stored keys, created in {:.1} s)",
            k.stored_keys, k.setup_seconds
        )?;
        for (name, summary) in [("cached", &k.cached), ("uncached", &k.uncached)] {
            writeln!(
                out,
                "  {name:<9} p50 {:>6} µs   p99 {:>6} µs   p99.9 {:>6} µs   ({} verifications)",
                summary.p50_us, summary.p99_us, summary.p999_us, summary.samples
            )?;
        }
        writeln!(
            out,
            "  original scheme (bcrypt crypt() scan over {} keys): {:.1} ms per verification (mean of {})",
            k.bcrypt_stored_keys, k.bcrypt_mean_ms, k.bcrypt_verifications
        )?;
        if k.failures > 0 {
            writeln!(out, "  !!! {} verifications FAILED", k.failures)?;
        }
        writeln!(out)?;
        writeln!(out, "Targets (DESIGN.md §7)")?;
        for t in &self.targets {
            let value = t.value.map_or("?".into(), |v| format!("{v:.2} {}", t.unit));
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            };
            writeln!(
                out,
                "  {:<76} {:>12}  goal {:<11} {}",
                t.name, value, t.goal, verdict
            )?;
        }
        Ok(())
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("?".into(), |v| format!("{v:.0}"))
}
