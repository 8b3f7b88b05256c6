//! The seed's functions, called the way the API calls them: through `Store::as_user`.

use std::time::Duration;

use chrono::{Days, Utc};
use epai_domain::ApiKey;
use epai_store::testing::TestDatabase;
use epai_store::{KeyPolicy, StoreError, StoreOptions};

use crate::support::*;

#[tokio::test]
async fn regenerate_issues_a_base64url_key_valid_for_90_days_and_stores_only_its_hash() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let partner = create_partner(&store, "Acme").await;
    let user = partner.require_user().unwrap();

    let (key, status) = store
        .as_user(user, async |tenant| {
            Ok((
                tenant.regenerate_api_key().await?,
                tenant.api_key_status().await?.expect("a key exists"),
            ))
        })
        .await
        .unwrap();

    let parsed = ApiKey::parse(&key).expect("epai_ + 32 base64url characters");
    assert!(!key.contains(['+', '/', '=']));
    assert_eq!(status.key_prefix.as_deref(), Some(parsed.display_prefix()));
    let lifetime = status.expires_at.unwrap() - status.created_at.unwrap();
    assert_eq!(lifetime, chrono::Duration::days(90));
    assert!(status.last_used_at.is_none());

    let admin = db.admin().await;
    let stored: String = admin
        .query_one(
            "SELECT key_hash FROM api_keys WHERE partner_id = $1",
            &[&partner.id.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, parsed.hash().as_str());
    let plaintext_anywhere: i64 = admin
        .query_one(
            "SELECT count(*) FROM api_keys WHERE row_to_json(api_keys)::text LIKE '%' || $1 || '%'",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plaintext_anywhere, 0, "the plaintext key is stored");
}

#[tokio::test]
async fn regenerate_replaces_the_previous_key() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let partner = create_partner(&store, "Acme").await;
    let user = partner.require_user().unwrap();
    let first = store
        .as_user(user, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    let second = store
        .as_user(user, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    assert_ne!(first, second);

    let admin = db.admin().await;
    let rows = admin
        .query(
            "SELECT key_hash, previous_key_hash FROM api_keys WHERE partner_id = $1",
            &[&partner.id.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one key per partner");
    let first_hash = ApiKey::parse(&first).unwrap().hash();
    assert_eq!(
        rows[0].get::<_, String>(0),
        ApiKey::parse(&second).unwrap().hash().as_str()
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(1),
        None,
        "without a grace period the old key ({}) is gone",
        first_hash.as_str()
    );
}

#[tokio::test]
async fn a_rotation_grace_period_keeps_the_previous_key_until_it_ends() {
    let db = TestDatabase::migrated().await;
    let store = db.store_with(&StoreOptions {
        key_policy: KeyPolicy {
            ttl: Duration::from_secs(7 * 24 * 3600),
            rotation_grace: Duration::from_secs(3600),
        },
        ..StoreOptions::default()
    });
    let partner = create_partner(&store, "Acme").await;
    let user = partner.require_user().unwrap();
    let old = store
        .as_user(user, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    let new_status = store
        .as_user(user, async |t| {
            t.regenerate_api_key().await?;
            t.api_key_status().await
        })
        .await
        .unwrap()
        .unwrap();
    let lifetime = new_status.expires_at.unwrap() - new_status.created_at.unwrap();
    assert_eq!(
        lifetime,
        chrono::Duration::days(7),
        "the configured TTL applies"
    );

    let row = db
        .admin()
        .await
        .query_one(
            "SELECT previous_key_hash, extract(epoch FROM previous_key_expires_at - now())::float8
             FROM api_keys WHERE partner_id = $1",
            &[&partner.id.as_uuid()],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some(ApiKey::parse(&old).unwrap().hash().as_str())
    );
    let remaining: f64 = row.get(1);
    assert!(
        (3500.0..=3600.0).contains(&remaining),
        "grace ends in {remaining} s"
    );
}

#[tokio::test]
async fn regenerate_refuses_a_user_without_a_partner() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    let lonely = insert_user_without_partner(&admin).await;
    let err = db
        .store()
        .as_user(lonely, async |t| t.regenerate_api_key().await)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("no partner")),
        "{err:?}"
    );
    let keys: i64 = admin
        .query_one("SELECT count(*) FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn get_api_key_for_partner_shows_only_the_callers_key() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let a = create_partner(&store, "A").await;
    let b = create_partner(&store, "B").await;
    let a_user = a.require_user().unwrap();
    let b_user = b.require_user().unwrap();
    assert_eq!(
        store
            .as_user(a_user, async |t| t.api_key_status().await)
            .await
            .unwrap(),
        None,
        "no key before the first regeneration"
    );
    store
        .as_user(b_user, async |t| t.regenerate_api_key().await)
        .await
        .unwrap();
    assert_eq!(
        store
            .as_user(a_user, async |t| t.api_key_status().await)
            .await
            .unwrap(),
        None,
        "A must not see B's key"
    );
    assert!(
        store
            .as_user(b_user, async |t| t.api_key_status().await)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn logs_come_newest_first_with_limit_and_offset() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let a = create_partner(&store, "A").await;
    let b = create_partner(&store, "B").await;
    let admin = db.admin().await;
    for minutes_ago in 1..=5 {
        admin
            .execute(
                "INSERT INTO logs (partner_id, endpoint, method, status, duration, created_at)
                 VALUES ($1, $2, 'GET', 200, 3, now() - make_interval(mins => $3))",
                &[&a.id.as_uuid(), &format!("/a/{minutes_ago}"), &minutes_ago],
            )
            .await
            .unwrap();
    }
    admin
        .execute(
            "INSERT INTO logs (partner_id, endpoint, method, status, created_at) VALUES ($1, '/b', 'GET', 200, now())",
            &[&b.id.as_uuid()],
        )
        .await
        .unwrap();
    let user = a.require_user().unwrap();
    let endpoints = |limit, offset| {
        let store = store.clone();
        async move {
            store
                .as_user(user, async |t| t.logs(limit, offset).await)
                .await
                .map(|logs| logs.into_iter().map(|l| l.endpoint).collect::<Vec<_>>())
        }
    };
    assert_eq!(endpoints(2, 0).await.unwrap(), ["/a/1", "/a/2"]);
    assert_eq!(endpoints(2, 2).await.unwrap(), ["/a/3", "/a/4"]);
    assert_eq!(endpoints(100, 4).await.unwrap(), ["/a/5"]);
    assert!(endpoints(10, 5).await.unwrap().is_empty());
    assert_eq!(
        endpoints(100, 0).await.unwrap().len(),
        5,
        "B's log is not A's"
    );
    assert!(matches!(
        endpoints(-1, 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        endpoints(10, -1).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        endpoints(100_000, 0).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn usage_summary_has_one_row_per_day_with_the_right_counts() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let a = create_partner(&store, "A").await;
    let b = create_partner(&store, "B").await;
    let admin = db.admin().await;
    let model = insert_model(&admin).await;
    // A: 3 events today, 2 two days ago, 1 eight days ago (outside a 7-day window);
    // 1 insight yesterday. B: 4 events today.
    for (partner, days_ago, count) in [(a.id, 0, 3), (a.id, 2, 2), (a.id, 8, 1), (b.id, 0, 4)] {
        for _ in 0..count {
            admin
                .execute(
                    "INSERT INTO ingestion_events (partner_id, event_type, data, source, version, created_at)
                     VALUES ($1, 'page_view', '{}', 't', '1',
                             date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                             - make_interval(days => $2) + interval '1 minute')",
                    &[&partner.as_uuid(), &days_ago],
                )
                .await
                .unwrap();
        }
    }
    admin
        .execute(
            "INSERT INTO insights (partner_id, model_id, content, created_at)
             VALUES ($1, $2, '{}', date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day' + interval '1 hour')",
            &[&a.id.as_uuid(), &model],
        )
        .await
        .unwrap();

    let user = a.require_user().unwrap();
    let days = store
        .as_user(user, async |t| t.usage_summary(7).await)
        .await
        .unwrap();
    assert_eq!(days.len(), 7);
    let today = Utc::now().date_naive();
    let expected_dates: Vec<_> = (0..7u64)
        .rev()
        .map(|n| today.checked_sub_days(Days::new(n)).unwrap())
        .collect();
    assert_eq!(
        days.iter().map(|d| d.date).collect::<Vec<_>>(),
        expected_dates
    );
    let counts: Vec<(i32, i32)> = days
        .iter()
        .map(|d| (d.event_count, d.insight_count))
        .collect();
    assert_eq!(
        counts,
        [(0, 0), (0, 0), (0, 0), (0, 0), (2, 0), (0, 1), (3, 0)],
        "oldest first, zero days included, B's events excluded"
    );

    let month = store
        .as_user(user, async |t| t.usage_summary(30).await)
        .await
        .unwrap();
    assert_eq!(month.len(), 30);
    assert_eq!(month.iter().map(|d| d.event_count).sum::<i32>(), 6);

    for bad in [0, -3, 367] {
        let err = store
            .as_user(user, async |t| t.usage_summary(bad).await)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err:?}");
    }
}
