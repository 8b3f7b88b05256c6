use chrono::Utc;
use epai_domain::{AuthUserId, Email, PartnerId, PartnerName};
use epai_store::testing::TestDatabase;
use epai_store::{NewEvent, NewPartner, PartnerRecord, Store};
use tokio_postgres::Client;
use uuid::Uuid;

pub const SUPABASE_PRELUDE: &str = include_str!("../fixtures/supabase_prelude.sql");
pub const SEED_SCHEMA: &str = include_str!("../fixtures/seed_schema.sql");

/// The API roles exist cluster-wide once any migration ran; a seed-only database needs them too.
const ROLES: &str = "
DO $$ BEGIN CREATE ROLE anon NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
";

/// A database holding exactly what the original deployment had: Supabase plus the seed schema.
pub async fn seed_database() -> TestDatabase {
    let db = TestDatabase::empty().await;
    let admin = db.admin().await;
    db.run_with_cluster_lock(async {
        admin.batch_execute(ROLES).await?;
        Ok(())
    })
    .await
    .expect("roles");
    admin
        .batch_execute(SUPABASE_PRELUDE)
        .await
        .expect("supabase prelude");
    admin.batch_execute(SEED_SCHEMA).await.expect("seed schema");
    db
}

/// A partner with its account, created directly in SQL so that it works on the seed schema too.
pub struct Fixture {
    pub user: AuthUserId,
    pub partner: PartnerId,
}

pub async fn insert_partner(admin: &Client, name: &str) -> Fixture {
    let user: Uuid = admin
        .query_one(
            "INSERT INTO auth.users (email) VALUES ($1) RETURNING id",
            &[&format!("{name}-{}@example.com", Uuid::new_v4().simple())],
        )
        .await
        .unwrap()
        .get(0);
    let partner: Uuid = admin
        .query_one(
            "INSERT INTO partners (user_id, name, email) VALUES ($1, $2, $3) RETURNING id",
            &[&user, &name, &format!("{name}@example.com")],
        )
        .await
        .unwrap()
        .get(0);
    Fixture {
        user: AuthUserId::new(user),
        partner: PartnerId::new(partner),
    }
}

/// A user account without a partner.
pub async fn insert_user_without_partner(admin: &Client) -> AuthUserId {
    let id: Uuid = admin
        .query_one(
            "INSERT INTO auth.users (email) VALUES ($1) RETURNING id",
            &[&format!("lonely-{}@example.com", Uuid::new_v4().simple())],
        )
        .await
        .unwrap()
        .get(0);
    AuthUserId::new(id)
}

/// One row per tenant table for `fixture`, written as the superuser.
pub async fn insert_tenant_rows(admin: &Client, fixture: &Fixture, model: Uuid) {
    let p = fixture.partner.as_uuid();
    admin
        .execute(
            "INSERT INTO api_keys (partner_id, key_hash, expires_at) VALUES ($1, md5(random()::text), now() + interval '1 day')",
            &[&p],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO ingestion_events (partner_id, event_type, data, source, version) VALUES ($1, 'page_view', '{\"url\": \"/\", \"user_id\": \"u1\"}', 'test', '1')",
            &[&p],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO insights (partner_id, model_id, content) VALUES ($1, $2, '{\"title\": \"t\"}')",
            &[&p, &model],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO logs (partner_id, endpoint, method, status) VALUES ($1, '/v1/events', 'POST', 202)",
            &[&p],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO security_events (partner_id, event_type) VALUES ($1, 'auth_failed')",
            &[&p],
        )
        .await
        .unwrap();
}

/// A webhook of `fixture`'s partner with one queued delivery (tables of migration 10).
pub async fn insert_webhook_rows(admin: &Client, fixture: &Fixture) {
    let p = fixture.partner.as_uuid();
    let webhook: Uuid = admin
        .query_one(
            "INSERT INTO webhooks (id, partner_id, url, event_types, secret_ciphertext, secret_key_id)
             VALUES (gen_random_uuid(), $1, 'https://hooks.example.com/', ARRAY['insight.created'], '\\x01', 'k')
             RETURNING id",
            &[&p],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO webhook_deliveries (partner_id, webhook_id, message_id, event_type, body, max_attempts, scheduled_at, created_at)
             VALUES ($1, $2, 'msg_1', 'insight.created', '{}', 10, now(), now())",
            &[&p, &webhook],
        )
        .await
        .unwrap();
}

pub async fn insert_model(admin: &Client) -> Uuid {
    admin
        .query_one(
            "INSERT INTO models (name, version, status) VALUES ($1, '1', 'active') RETURNING id",
            &[&format!("model-{}", Uuid::new_v4().simple())],
        )
        .await
        .unwrap()
        .get(0)
}

/// Starts a transaction on a plain connection acting as `user` the way `Store::as_user` does,
/// so the same probes run on databases that have only the seed schema.
pub async fn begin_as(
    client: &mut Client,
    user: Option<AuthUserId>,
) -> tokio_postgres::Transaction<'_> {
    let tx = client.transaction().await.unwrap();
    match user {
        Some(user) => {
            let claims = serde_json::json!({"sub": user, "role": "authenticated"}).to_string();
            tx.execute(
                "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
                &[&claims],
            )
            .await
            .unwrap();
        }
        None => {
            tx.execute("SELECT set_config('role', 'anon', true)", &[])
                .await
                .unwrap();
        }
    }
    tx
}

/// A partner created through the store, as the CLI does.
pub async fn create_partner(store: &Store, name: &str) -> PartnerRecord {
    let new = NewPartner {
        name: PartnerName::parse(name).unwrap(),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).unwrap(),
        password_hash: None,
    };
    store
        .as_service_role(async |service| service.create_partner(&new).await)
        .await
        .unwrap()
}

/// An event of `partner` with nothing in it.
pub fn click(partner: PartnerId) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        partner_id: partner,
        event_type: "click".into(),
        data: serde_json::json!({}).into(),
        source: "test".into(),
        version: "1".into(),
        metadata: None,
        occurred_at: Utc::now(),
        created_at: None,
    }
}

/// Holds `ingestion_events` locked until the returned transaction ends: every write to it waits.
pub async fn lock_ingestion_events(admin: &mut Client) -> tokio_postgres::Transaction<'_> {
    let blocker = admin.transaction().await.unwrap();
    blocker
        .batch_execute("LOCK TABLE ingestion_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    blocker
}
