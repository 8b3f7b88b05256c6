//! Tenant isolation enforced by PostgreSQL itself: as partner A's user, every seed table shows
//! only A's rows and nothing of B's can be changed; an anonymous caller sees nothing at all.

use epai_store::testing::TestDatabase;
use uuid::Uuid;

use crate::support::*;

const TENANT_TABLES: [(&str, &str); 10] = [
    ("partners", "id"),
    ("api_keys", "partner_id"),
    ("ingestion_events", "partner_id"),
    ("ingestion_event_daily_counts", "partner_id"),
    ("ingestion_entity_daily_counts", "partner_id"),
    ("insights", "partner_id"),
    ("logs", "partner_id"),
    ("security_events", "partner_id"),
    ("webhooks", "partner_id"),
    ("webhook_deliveries", "partner_id"),
];

/// Tables the anonymous role may not even read.
const SIGNED_IN_ONLY: [&str; 4] = [
    "webhooks",
    "webhook_deliveries",
    "ingestion_event_daily_counts",
    "ingestion_entity_daily_counts",
];

struct TwoTenants {
    db: TestDatabase,
    a: Fixture,
    b: Fixture,
}

async fn two_tenants() -> TwoTenants {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let a = insert_partner(&admin, "a").await;
    let b = insert_partner(&admin, "b").await;
    let model = insert_model(&admin).await;
    insert_tenant_rows(&admin, &a, model).await;
    insert_tenant_rows(&admin, &b, model).await;
    insert_webhook_rows(&admin, &a).await;
    insert_webhook_rows(&admin, &b).await;
    TwoTenants { db, a, b }
}

#[tokio::test]
async fn a_partner_selects_only_its_own_rows_from_every_table() {
    let t = two_tenants().await;
    let mut admin = t.db.admin().await;
    let tx = begin_as(&mut admin, Some(t.a.user)).await;
    for (table, column) in TENANT_TABLES {
        let owners: Vec<Uuid> = tx
            .query(&format!("SELECT {column} FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!owners.is_empty(), "{table}: A sees none of its own rows");
        assert!(
            owners.iter().all(|o| *o == t.a.partner.as_uuid()),
            "{table}: A sees rows of another partner"
        );
    }
    let models: i64 = tx
        .query_one("SELECT count(*) FROM models", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        models, 6,
        "the shared model catalogue (the fixture's model and the five built in) is readable"
    );
}

#[tokio::test]
async fn a_partner_cannot_update_another_partners_rows() {
    let t = two_tenants().await;
    let mut admin = t.db.admin().await;
    let b = t.b.partner.as_uuid();
    let updates = [
        "UPDATE partners SET name = 'stolen' WHERE id = $1",
        "UPDATE api_keys SET expires_at = now() + interval '10 years' WHERE partner_id = $1",
        "UPDATE ingestion_events SET event_type = 'stolen' WHERE partner_id = $1",
        "UPDATE insights SET content = '{}' WHERE partner_id = $1",
        "UPDATE logs SET status = 999 WHERE partner_id = $1",
        "UPDATE security_events SET event_type = 'hidden' WHERE partner_id = $1",
        "DELETE FROM ingestion_events WHERE partner_id = $1",
        "UPDATE ingestion_event_daily_counts SET events = 0 WHERE partner_id = $1",
        "UPDATE ingestion_entity_daily_counts SET events = 0 WHERE partner_id = $1",
        "DELETE FROM api_keys WHERE partner_id = $1",
        "UPDATE webhooks SET url = 'https://stolen.example/' WHERE partner_id = $1",
        "DELETE FROM webhooks WHERE partner_id = $1",
        "UPDATE webhook_deliveries SET state = 'dead' WHERE partner_id = $1",
    ];
    for statement in updates {
        let tx = begin_as(&mut admin, Some(t.a.user)).await;
        match tx.execute(statement, &[&b]).await {
            Ok(affected) => assert_eq!(affected, 0, "{statement} changed B's rows"),
            Err(e) => assert_eq!(
                e.code().map(|c| c.code()),
                Some("42501"),
                "{statement}: unexpected error {e}"
            ),
        }
        tx.rollback().await.unwrap();
    }
    let untouched: i64 = admin
        .query_one(
            "SELECT count(*) FROM ingestion_events WHERE partner_id = $1 AND event_type = 'page_view'",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(untouched, 1);
}

#[tokio::test]
async fn a_partner_cannot_insert_rows_for_another_partner() {
    let t = two_tenants().await;
    let mut admin = t.db.admin().await;
    let b = t.b.partner.as_uuid();
    let inserts = [
        "INSERT INTO ingestion_events (partner_id, event_type, data, source, version) VALUES ($1, 'x', '{}', 's', '1')",
        "INSERT INTO api_keys (partner_id, key_hash) VALUES ($1, 'forged')",
        "INSERT INTO insights (partner_id, content) VALUES ($1, '{}')",
        "INSERT INTO logs (partner_id, endpoint, method, status) VALUES ($1, '/', 'GET', 200)",
        "INSERT INTO ingestion_event_daily_counts (partner_id, day, event_type, slot, events) VALUES ($1, current_date, 'x', 0, 1)",
        "INSERT INTO ingestion_entity_daily_counts (partner_id, day, entity_id, occurred_day, slot, events) VALUES ($1, current_date, 'x', current_date, 0, 1)",
        "INSERT INTO security_events (partner_id, event_type) VALUES ($1, 'forged')",
        "INSERT INTO partners (id, user_id, name) VALUES ($1, NULL, 'twin')",
        "INSERT INTO webhooks (id, partner_id, url, event_types, secret_ciphertext, secret_key_id) VALUES (gen_random_uuid(), $1, 'https://x.example/', ARRAY['insight.created'], '\\x01', 'k')",
        "INSERT INTO webhook_deliveries (partner_id, webhook_id, message_id, event_type, body, max_attempts, scheduled_at, created_at) SELECT $1, id, 'm', 'insight.created', '{}', 1, now(), now() FROM webhooks",
    ];
    for statement in inserts {
        let tx = begin_as(&mut admin, Some(t.a.user)).await;
        let err = tx
            .execute(statement, &[&b])
            .await
            .expect_err(&format!("{statement} was accepted"));
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("42501"),
            "{statement}: {err}"
        );
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn a_partner_may_insert_its_own_events() {
    let t = two_tenants().await;
    let mut admin = t.db.admin().await;
    let tx = begin_as(&mut admin, Some(t.a.user)).await;
    let inserted = tx
        .execute(
            "INSERT INTO ingestion_events (partner_id, event_type, data, source, version) VALUES ($1, 'x', '{}', 's', '1')",
            &[&t.a.partner.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    // The partner cannot write the counts itself, yet its own insert is counted.
    let counted: i64 = tx
        .query_one(
            "SELECT coalesce(sum(events), 0)::bigint FROM ingestion_event_daily_counts WHERE event_type = 'x'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 1);
}

#[tokio::test]
async fn the_anonymous_role_sees_nothing() {
    let t = two_tenants().await;
    let mut admin = t.db.admin().await;
    let tx = begin_as(&mut admin, None).await;
    for (table, _) in TENANT_TABLES
        .iter()
        .chain([("models", "id")].iter())
        .filter(|(table, _)| !SIGNED_IN_ONLY.contains(table))
    {
        let visible: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(visible, 0, "anon sees rows of {table}");
    }
    for table in SIGNED_IN_ONLY {
        tx.execute("SAVEPOINT probe", &[]).await.unwrap();
        let err = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect_err(&format!("anon may read {table}"));
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("42501"),
            "{table}: {err}"
        );
        tx.execute("ROLLBACK TO SAVEPOINT probe", &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_store_runs_tenant_work_as_the_user_and_without_rls_bypass() {
    let t = two_tenants().await;
    let store = t.db.store();
    let role = store.session_role().await.unwrap();
    assert_eq!(role.name, "epai_app");
    assert!(!role.superuser && !role.bypasses_rls, "{role:?}");

    let (uid, role, partner) = store
        .as_user(t.a.user, async |tenant| {
            let row = tenant
                .transaction()
                .query_one("SELECT auth.uid(), current_user::text", &[])
                .await
                .unwrap();
            let partner = tenant.partner().await?;
            Ok((row.get::<_, Uuid>(0), row.get::<_, String>(1), partner))
        })
        .await
        .unwrap();
    assert_eq!(uid, t.a.user.as_uuid());
    assert_eq!(role, "authenticated");
    assert_eq!(partner.id, t.a.partner);

    // Outside a tenant transaction the pool's role can read nothing.
    let err = store
        .as_user(t.a.user, async |tenant| {
            tenant
                .transaction()
                .batch_execute("RESET ROLE; SELECT count(*) FROM ingestion_events")
                .await
                .map_err(epai_store::StoreError::from)
        })
        .await
        .expect_err("epai_app must not read tables by itself");
    assert!(
        matches!(err, epai_store::StoreError::Forbidden(_)),
        "{err:?}"
    );
}
