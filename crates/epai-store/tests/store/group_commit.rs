//! How the ingest writers group requests into commits: a few small commits at a time, so the
//! requests arriving meanwhile share the next one; large ones run alongside.

use std::time::{Duration, Instant};

use epai_domain::PartnerId;
use epai_store::testing::TestDatabase;
use epai_store::{IngestOptions, IngestWriter, small_commits_for_flush, time_commit_flush};
use tokio_postgres::Client;

use crate::support::*;

/// Waits until `waiting` sessions of this database wait for a lock; fails after 20 s.
async fn eventually_waiting(admin: &Client, waiting: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now_waiting: i64 = admin
            .query_one(
                "SELECT count(DISTINCT pid) FROM pg_locks
                 WHERE NOT granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if now_waiting >= waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now_waiting} sessions wait for the lock, not {waiting}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Transactions that stored the partner's events.
async fn commits_of(admin: &Client, partner: PartnerId) -> Vec<i64> {
    admin
        .query(
            "SELECT count(*) FROM ingestion_events WHERE partner_id = $1
             GROUP BY xmin::text ORDER BY count(*)",
            &[&partner.as_uuid()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn writers(coalesce_rows: usize, small_commits: usize) -> IngestOptions {
    IngestOptions {
        writers: 4,
        coalesce_rows,
        small_commits: Some(small_commits),
        ..IngestOptions::default()
    }
}

/// Commits of requests sent while the table is locked: first as many as may be in flight
/// (each waits for the lock before the next is sent), then three more.
async fn requests_during_small_commits(options: IngestOptions) -> Vec<i64> {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = create_partner(&store, "Acme").await;
    let (writer, writers) = IngestWriter::start(store, options);
    let mut admin = db.admin().await;
    let blocker = lock_ingestion_events(&mut admin).await;
    let watcher = db.admin().await;
    let in_flight = if options.coalesce_rows == 0 {
        1
    } else {
        options.small_commits.unwrap()
    };
    let mut requests = Vec::new();
    for waiting in 1..=in_flight {
        requests.push(writer.write(vec![click(acme.id)]));
        eventually_waiting(&watcher, waiting as i64).await;
    }
    // One at a time, each taken by a writer before the next arrives: an idle writer could
    // start a commit of its own for every one.
    for _ in 0..3 {
        requests.push(writer.write(vec![click(acme.id)]));
        let deadline = Instant::now() + Duration::from_secs(20);
        while writer.queue_depth() > 0 {
            assert!(Instant::now() < deadline, "no writer takes the request");
            tokio::task::yield_now().await;
        }
    }
    blocker.rollback().await.unwrap();

    for request in requests {
        request.await.unwrap();
    }
    drop(writer);
    writers.join_all().await;
    commits_of(&watcher, acme.id).await
}

#[tokio::test]
async fn requests_arriving_during_a_small_commit_share_the_next_one() {
    assert_eq!(requests_during_small_commits(writers(100, 1)).await, [1, 3]);
}

#[tokio::test]
async fn the_next_small_commit_waits_only_once_the_limit_is_in_flight() {
    assert_eq!(
        requests_during_small_commits(writers(100, 2)).await,
        [1, 1, 3]
    );
}

#[tokio::test]
async fn without_coalescing_idle_writers_commit_requests_on_their_own() {
    assert_eq!(
        requests_during_small_commits(writers(0, 1)).await,
        [1, 1, 1, 1]
    );
}

#[tokio::test]
async fn a_large_request_does_not_wait_for_the_small_commit_in_flight() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = create_partner(&store, "Acme").await;
    let (writer, writers) = IngestWriter::start(store, writers(100, 1));
    let mut admin = db.admin().await;
    let blocker = lock_ingestion_events(&mut admin).await;
    let watcher = db.admin().await;
    let small = writer.write(vec![click(acme.id)]);
    eventually_waiting(&watcher, 1).await;
    let large = writer.write((0..150).map(|_| click(acme.id)).collect());
    // Two commits wait for the table at once: the large one did not queue behind the small.
    eventually_waiting(&watcher, 2).await;
    blocker.rollback().await.unwrap();

    small.await.unwrap();
    large.await.unwrap();
    drop(writer);
    writers.join_all().await;
    assert_eq!(commits_of(&watcher, acme.id).await, [1, 150]);
}

#[test]
fn small_commits_overlap_only_where_the_flush_is_slow() {
    assert_eq!(small_commits_for_flush(Duration::from_micros(15)), 1);
    assert_eq!(small_commits_for_flush(Duration::from_micros(499)), 1);
    assert_eq!(small_commits_for_flush(Duration::from_micros(500)), 3);
    assert_eq!(small_commits_for_flush(Duration::from_millis(4)), 3);
}

#[tokio::test]
async fn a_commit_flush_is_timed_on_the_database_the_writers_use() {
    let db = TestDatabase::migrated().await;
    let flush = time_commit_flush(db.target()).await.unwrap();
    assert!(flush < Duration::from_secs(5), "{flush:?}");
    let unreachable = epai_store::DatabaseTarget::from_url("postgres://nobody@127.0.0.1:1/none");
    assert!(time_commit_flush(&unreachable.unwrap()).await.is_err());
}
