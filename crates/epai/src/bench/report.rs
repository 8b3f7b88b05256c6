//! Everything one run measured, as a table for people and as JSON for tools.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::HttpFigures;
use super::freshness::FreshnessFigures;
use super::keys::KeyFigures;
use super::postgres::{PostgresFigures, Workload};
use super::reads::{LoadFigures, ReadFigures};
use super::system::{self, ProcessMemory};

/// The read target's partner size; smaller runs say so.
const TARGET_READ_EVENTS: i64 = 1_000_000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub phase_seconds: u64,
    pub postgres: Vec<PostgresFigures>,
    pub http: Vec<HttpFigures>,
    /// The events of the partner the reads and event-to-insight ran against.
    pub read_partner: LoadFigures,
    pub event_to_insight: FreshnessFigures,
    pub reads: Vec<ReadFigures>,
    /// The server's memory at the end: `peak_rss_mb` covers the whole run.
    pub server_memory: Option<ProcessMemory>,
    pub keys: KeyFigures,
    pub targets: Vec<Target>,
}

/// Everything measured, before the targets are computed.
pub struct Measured {
    pub phase: Duration,
    pub postgres_version: String,
    pub postgres: Vec<PostgresFigures>,
    pub http: Vec<HttpFigures>,
    pub load: LoadFigures,
    pub freshness: FreshnessFigures,
    pub reads: Vec<ReadFigures>,
    pub server_memory: Option<ProcessMemory>,
    pub keys: KeyFigures,
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
    pub fn new(measured: Measured) -> Self {
        let mut report = Self {
            machine: Machine {
                cores: system::cores(),
                memory_mb: system::memory_total_mb(),
                postgres_version: measured.postgres_version,
                epai_version: env!("CARGO_PKG_VERSION"),
            },
            phase_seconds: measured.phase.as_secs(),
            postgres: measured.postgres,
            http: measured.http,
            read_partner: measured.load,
            event_to_insight: measured.freshness,
            reads: measured.reads,
            server_memory: measured.server_memory,
            keys: measured.keys,
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
                .chain(self.server_memory.map(|m| m.peak_rss_mb))
                .collect(),
        );
        let read_p99 = |path: &str| {
            self.reads
                .iter()
                .find(|f| f.path == path && f.requests > 0)
                .map(|f| f.latency_ms.p99)
        };
        let insights_p99 = read_p99(super::reads::READ_PATHS[0]);
        let usage_p99 = read_p99(super::reads::READ_PATHS[1]);
        let freshness_p95 =
            (self.event_to_insight.samples > 0).then_some(self.event_to_insight.latency_ms.p95);
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
                name: "read p99, GET /v1/insights, 32 connections",
                value: insights_p99,
                unit: "ms",
                goal: "< 10",
                met: insights_p99.map(|p| p < 10.0),
            },
            Target {
                name: "read p99, GET /v1/usage, 32 connections",
                value: usage_p99,
                unit: "ms",
                goal: "< 10",
                met: usage_p99.map(|p| p < 10.0),
            },
            Target {
                name: "event to insight on the stream, p95",
                value: freshness_p95,
                unit: "ms",
                goal: "< 2000",
                met: freshness_p95.map(|p| p < 2000.0),
            },
            Target {
                name: "server peak RSS (ingest, event to insight, reads)",
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
            || self.reads.iter().any(|f| f.errors > 0)
            || self.event_to_insight.timeouts > 0
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
        self.write_reads(out)?;
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

impl Report {
    fn write_reads(&self, out: &mut String) -> std::fmt::Result {
        let load = &self.read_partner;
        writeln!(
            out,
            "Reads of one partner with {} events over {} days (loaded in {:.1} s, {:.0} rows/s){}",
            load.events,
            load.days,
            load.seconds,
            load.rows_per_second,
            if load.events < TARGET_READ_EVENTS {
                " — FEWER than the target's 1M (--quick or --read-events)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "  {:<28} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>6} {:>6}",
            "request",
            "conns",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "RSS MB",
            "srv cpu",
            "cpu%"
        )?;
        for f in &self.reads {
            writeln!(
                out,
                "  {:<28} {:>5} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>7} {:>6} {:>6}",
                format!("GET {}", f.path),
                f.connections,
                f.requests_per_second,
                f.latency_ms.p50,
                f.latency_ms.p95,
                f.latency_ms.p99,
                f.latency_ms.p999,
                f.errors,
                f.server_memory
                    .map_or("?".into(), |mem| format!("{:.0}", mem.rss_mb)),
                f.cpu
                    .and_then(|c| c.process_cores)
                    .map_or("?".into(), |cores| format!("{cores:.2}")),
                percent(f.cpu.map(|c| c.machine_busy_percent)),
            )?;
            if let Some(error) = &f.first_error {
                writeln!(out, "  !!! first error: {error}")?;
            }
        }
        let e = &self.event_to_insight;
        writeln!(
            out,
            "Event to insight (POST /v1/events until the changed insight arrives on \
             /v1/insights/stream; partner with {} events)",
            e.partner_events
        )?;
        writeln!(
            out,
            "  p50 {:>8.1} ms   p95 {:>8.1} ms   max {:>8.1} ms   ({} samples, {} timed out)",
            e.latency_ms.p50, e.latency_ms.p95, e.latency_ms.max, e.samples, e.timeouts
        )?;
        if let Some(memory) = self.server_memory {
            writeln!(
                out,
                "Server memory: peak RSS {:.0} MB over the whole run, {:.0} MB at the end",
                memory.peak_rss_mb, memory.rss_mb
            )?;
        }
        Ok(())
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("?".into(), |v| format!("{v:.0}"))
}
