//! An existing deployment of the seed schema upgrades in place and keeps its rows; migrations
//! are idempotent.

use epai_domain::ApiKey;
use epai_store::testing::TestDatabase;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn a_seed_database_upgrades_in_place_and_keeps_its_rows() {
    let db = seed_database().await;
    let mut admin = db.admin().await;
    let a = insert_partner(&admin, "a").await;
    let b = insert_partner(&admin, "b").await;
    let model = insert_model(&admin).await;
    insert_tenant_rows(&admin, &a, model).await;
    insert_tenant_rows(&admin, &b, model).await;
    // The seed's own function issued a bcrypt-hashed key to a third partner.
    let c = insert_partner(&admin, "c").await;
    let tx = begin_as(&mut admin, Some(c.user)).await;
    tx.query("SELECT * FROM regenerate_api_key_for_partner()", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let count_all = async |admin: &tokio_postgres::Client| -> Vec<i64> {
        let mut counts = Vec::new();
        for table in [
            "auth.users",
            "partners",
            "api_keys",
            "models",
            "ingestion_events",
            "insights",
            "logs",
            "security_events",
        ] {
            counts.push(
                admin
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await
                    .unwrap()
                    .get(0),
            );
        }
        counts
    };
    let before = count_all(&admin).await;

    let applied = db
        .run_with_cluster_lock(epai_store::migrate(db.target()))
        .await
        .expect("migrations apply over the seed schema");
    assert_eq!(
        applied.first(),
        Some(&1),
        "every migration ran over the seed schema"
    );
    assert_eq!(
        applied.last(),
        Some(&epai_store::latest_migration_version())
    );
    let mut expected = before.clone();
    expected[3] += 5; // the built-in model catalogue
    assert_eq!(
        count_all(&admin).await,
        expected,
        "every row survived the upgrade"
    );

    let legacy_hash: String = admin
        .query_one(
            "SELECT key_hash FROM api_keys WHERE partner_id = $1",
            &[&c.partner.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(legacy_hash.starts_with("$2"), "the bcrypt hash is kept");
    let unset: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE occurred_at IS DISTINCT FROM created_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unset, 0, "existing events happened when they were ingested");

    // The upgraded database behaves like a fresh one: isolation and the fixed functions.
    let store = db.store();
    let visible = store
        .as_user(a.user, async |t| {
            Ok(t.transaction()
                .query("SELECT DISTINCT partner_id FROM ingestion_events", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, Uuid>(0))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap();
    assert_eq!(visible, [a.partner.as_uuid()]);
    let new_key = store
        .as_user(c.user, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    let stored: String = admin
        .query_one(
            "SELECT key_hash FROM api_keys WHERE partner_id = $1",
            &[&c.partner.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, ApiKey::parse(&new_key).unwrap().hash().as_str());
    let days = store
        .as_user(a.user, async |t| t.usage_summary(30).await)
        .await
        .unwrap();
    assert_eq!(days.iter().map(|d| d.event_count).sum::<i32>(), 1);
}

#[tokio::test]
async fn running_migrations_again_changes_nothing() {
    let db = TestDatabase::migrated().await;
    let again = db
        .run_with_cluster_lock(epai_store::migrate(db.target()))
        .await
        .unwrap();
    assert!(again.is_empty(), "already applied: {again:?}");
    let status = db.store().migration_status().await.unwrap();
    assert!(status.is_current(), "{status:?}");
}

#[tokio::test]
async fn every_migration_file_can_be_applied_twice() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let store = db.store();
    let partner = create_partner(&store, "Acme").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    db.run_with_cluster_lock(async {
        for file in &files {
            let sql = std::fs::read_to_string(file).unwrap();
            admin
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{} is not idempotent: {e:?}", file.display()));
        }
        Ok(())
    })
    .await
    .unwrap();
    let still_there = store
        .as_service_role(async |s| s.find_partner(&partner.id.to_string()).await)
        .await
        .unwrap();
    assert_eq!(still_there.id, partner.id);
}

#[tokio::test]
async fn readiness_reports_a_database_without_migrations() {
    let db = TestDatabase::empty().await;
    // Before any migration: not current, and not a crash. (The test server's login role is a
    // superuser here; epai_app may not exist yet on a fresh cluster, so connect as given.)
    let store = db.store();
    if let Ok(status) = store.migration_status().await {
        assert_eq!(status.applied, None);
        assert!(!status.is_current());
    }
    db.run_with_cluster_lock(epai_store::migrate(db.target()))
        .await
        .unwrap();
    assert!(store.migration_status().await.unwrap().is_current());
}
