//! Bounds on waiting for the database: a full pool and a statement past its timeout end in a
//! clear error within the bound, never a hang.

use std::time::Duration;

use chrono::Utc;
use epai_store::testing::TestDatabase;
use epai_store::{NewEvent, StoreError, StoreOptions};
use tokio::sync::oneshot;
use uuid::Uuid;

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
    let blocker = admin.transaction().await.unwrap();
    blocker
        .batch_execute("LOCK TABLE ingestion_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let event = NewEvent {
        id: Uuid::now_v7(),
        partner_id: acme.id,
        event_type: "click".into(),
        data: serde_json::json!({}),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at: Utc::now(),
        created_at: None,
    };
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
