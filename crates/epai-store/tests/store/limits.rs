//! Bounds on waiting for the database: a full pool and a statement past its timeout end in a
//! clear error within the bound, never a hang.

use std::time::Duration;

use epai_store::testing::TestDatabase;
use epai_store::{IngestOptions, IngestWriter, StoreError, StoreOptions};
use tokio::sync::oneshot;

use crate::support::*;

#[tokio::test]
async fn a_caller_waiting_past_the_pool_timeout_is_told_the_store_is_unavailable() {
    let db = TestDatabase::migrated().await;
    let store = db.store_with(&StoreOptions {
        pool_size: 1,
        acquire_timeout: Duration::from_millis(200),
        ..StoreOptions::default()
    });
    let (holding, held) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let holder = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .as_service_role(async move |_| {
                    let _ = holding.send(());
                    let _ = released.await;
                    Ok(())
                })
                .await
        }
    });
    held.await.unwrap();
    let waited = store
        .as_service_role(async |s| s.find_partner("nobody@example.com").await)
        .await;
    assert!(
        matches!(waited, Err(StoreError::Unavailable(_))),
        "{waited:?}"
    );

    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let free_again = store
        .as_service_role(async |s| s.find_partner("nobody@example.com").await)
        .await;
    assert!(
        matches!(free_again, Err(StoreError::NotFound(_))),
        "{free_again:?}"
    );
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_cancelled_and_reported_as_a_timeout() {
    let db = TestDatabase::migrated().await;
    let store = db.store_with(&StoreOptions {
        statement_timeout: Some(Duration::from_millis(200)),
        ..StoreOptions::default()
    });
    let acme = create_partner(&store, "Acme").await;
    let mut admin = db.admin().await;
    let blocker = lock_ingestion_events(&mut admin).await;
    let event = click(acme.id);
    let one = std::slice::from_ref(&event);
    let blocked = store
        .as_service_role(async |s| s.insert_events(one).await)
        .await;
    assert!(
        matches!(blocked, Err(StoreError::Timeout(_))),
        "{blocked:?}"
    );
    blocker.rollback().await.unwrap();
    store
        .as_service_role(async |s| s.insert_events(one).await)
        .await
        .expect("the same statement succeeds once nothing blocks it");
}

#[tokio::test]
async fn an_ingest_commit_left_unanswered_is_given_up_and_the_writer_carries_on() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let acme = create_partner(&store, "Acme").await;
    let (writer, mut writers) = IngestWriter::start(
        store.clone(),
        IngestOptions {
            writers: 1,
            commit_timeout: Duration::from_millis(300),
            ..IngestOptions::default()
        },
    );
    writer
        .write(vec![click(acme.id)])
        .await
        .expect("the writer's connection is open and its INSERT prepared");
    // No statement timeout here: the server simply does not answer while the table is held,
    // as a hung server would not.
    let mut admin = db.admin().await;
    let blocker = lock_ingestion_events(&mut admin).await;
    // First the commit on the open connection goes unanswered, then (on a new connection)
    // preparing the INSERT: both are given up.
    for _ in 0..2 {
        let unanswered = writer.write(vec![click(acme.id)]).await;
        assert!(
            matches!(unanswered, Err(StoreError::Timeout(_))),
            "{unanswered:?}"
        );
    }
    blocker.rollback().await.unwrap();

    let next = click(acme.id);
    let id = next.id;
    writer
        .write(vec![next])
        .await
        .expect("the writer opened a new connection");
    drop(writer);
    while writers.join_next().await.is_some() {}
    let stored: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
}
