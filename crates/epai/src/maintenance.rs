//! Partition maintenance: `epai maintenance` once, and the same pass on a timer inside
//! `epai serve`. What is kept is configuration (`EPAI_LOG_RETENTION_DAYS`,
//! `EPAI_EVENT_RETENTION_DAYS`, `EPAI_PARTITIONS_AHEAD`); the work is the store's.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use epai_store::{PartitionAction, PartitionChange, RetentionPolicy, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::GlobalArgs;
use crate::database;

#[derive(Args, Debug, Clone)]
pub struct MaintenanceArgs {
    /// Print what would be created, moved and dropped, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the actions as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `epai maintenance`: one pass, printed; fails if any action failed.
pub async fn run(global: &GlobalArgs, args: &MaintenanceArgs) -> anyhow::Result<()> {
    let db = database::open_migrated(global).await?;
    let store = db.store(global)?;
    let policy = global.retention_policy();
    let actions = store
        .maintain_partitions(&policy, args.dry_run, chrono::Utc::now())
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&actions)?)?;
    } else {
        writeln!(
            out,
            "partition maintenance{}: request logs kept {}, events kept {}, {} months ahead",
            if args.dry_run { " (dry run)" } else { "" },
            describe_retention(policy.logs),
            describe_retention(policy.events),
            policy.months_ahead
        )?;
        if actions.is_empty() {
            writeln!(out, "  nothing to do")?;
        }
        for action in &actions {
            writeln!(out, "  {}", describe(action, args.dry_run))?;
        }
    }
    drop(out);
    db.close().await?;
    let failed = actions
        .iter()
        .filter(|a| a.change == PartitionChange::Failed)
        .count();
    anyhow::ensure!(failed == 0, "{failed} maintenance actions failed");
    Ok(())
}

fn describe_retention(retention: Option<Duration>) -> String {
    match retention {
        Some(window) => format!("{} days", window.as_secs() / (24 * 3600)),
        None => "forever".into(),
    }
}

fn describe(action: &PartitionAction, dry_run: bool) -> String {
    let partition = action.partition.as_deref().unwrap_or("");
    let day = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(String::new, |at| at.format("%Y-%m-%d").to_string())
    };
    let range = format!("[{}, {})", day(action.range_start), day(action.range_end));
    let rows = action.rows.unwrap_or(0);
    let (done, planned) = match action.change {
        PartitionChange::Create => ("created", "would create"),
        PartitionChange::Drop => ("dropped", "would drop"),
        PartitionChange::Purge => ("purged", "would purge"),
        PartitionChange::Skip => ("skipped", "skipped"),
        PartitionChange::Busy => ("busy", "busy"),
        PartitionChange::Failed => ("failed", "failed"),
    };
    let verb = if dry_run { planned } else { done };
    let text = match action.change {
        PartitionChange::Create => {
            format!("{verb} {partition} {range}, {rows} rows from the default partition")
        }
        PartitionChange::Drop => format!("{verb} {partition} {range}, about {rows} rows"),
        PartitionChange::Purge => format!(
            "{verb} {rows} rows older than {} from {partition}",
            day(action.range_end)
        ),
        PartitionChange::Skip | PartitionChange::Busy | PartitionChange::Failed => {
            format!("{verb} {partition}")
        }
    };
    match &action.detail {
        Some(detail) => format!("{}: {text}: {detail}", action.table),
        None => format!("{}: {text}", action.table),
    }
}

/// The same pass every `every`, from now on, until `stop` turns true. Replicas each run it;
/// the store's advisory lock lets one of them do the work.
pub fn schedule(
    store: Store,
    policy: RetentionPolicy,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            match store
                .maintain_partitions(&policy, false, chrono::Utc::now())
                .await
            {
                Ok(actions) => {
                    for action in &actions {
                        let text = describe(action, false);
                        match action.change {
                            PartitionChange::Failed | PartitionChange::Busy => {
                                tracing::warn!(action = %text, "partition maintenance");
                            }
                            PartitionChange::Skip => {
                                tracing::debug!(action = %text, "partition maintenance");
                            }
                            _ => tracing::info!(action = %text, "partition maintenance"),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "partition maintenance could not run; retrying at the next pass");
                }
            }
        }
    })
}
