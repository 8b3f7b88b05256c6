//! Per-partner API key quotas: operators set them through the service role; tenants cannot.

use epai_domain::PartnerId;
use epai_store::StoreError;
use epai_store::testing::TestDatabase;
use uuid::Uuid;

use crate::support::create_partner;

#[tokio::test]
async fn an_operator_sets_and_clears_a_partners_quota() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let partner = create_partner(&store, "Quota Co").await;
    assert_eq!(partner.rate_limit_per_minute, None);

    let raised = store
        .as_service_role(async |service| service.set_rate_limit(partner.id, Some(600)).await)
        .await
        .unwrap();
    assert_eq!(raised.id, partner.id);
    assert_eq!(raised.rate_limit_per_minute, Some(600));
    let found = store
        .as_service_role(async |service| service.find_partner(&partner.id.to_string()).await)
        .await
        .unwrap();
    assert_eq!(found.rate_limit_per_minute, Some(600));

    let unlimited = store
        .as_service_role(async |service| service.set_rate_limit(partner.id, Some(0)).await)
        .await
        .unwrap();
    assert_eq!(unlimited.rate_limit_per_minute, Some(0));

    let cleared = store
        .as_service_role(async |service| service.set_rate_limit(partner.id, None).await)
        .await
        .unwrap();
    assert_eq!(cleared.rate_limit_per_minute, None);
}

#[tokio::test]
async fn unknown_partners_and_unstorable_quotas_are_refused() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let unknown = PartnerId::new(Uuid::new_v4());
    let err = store
        .as_service_role(async |service| service.set_rate_limit(unknown, Some(10)).await)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let partner = create_partner(&store, "Huge Co").await;
    let err = store
        .as_service_role(async |service| service.set_rate_limit(partner.id, Some(u32::MAX)).await)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    let admin = db.admin().await;
    let negative = admin
        .execute(
            "UPDATE partners SET rate_limit_per_minute = -1 WHERE id = $1",
            &[&partner.id.as_uuid()],
        )
        .await
        .unwrap_err();
    assert_eq!(negative.code().map(|c| c.code()), Some("23514"));
}

#[tokio::test]
async fn a_partner_cannot_raise_its_own_quota() {
    let db = TestDatabase::migrated().await;
    let store = db.store();
    let partner = create_partner(&store, "Greedy Co").await;
    let err = store
        .as_user(partner.require_user().unwrap(), async |tenant| {
            tenant
                .transaction()
                .execute("UPDATE partners SET rate_limit_per_minute = 100000", &[])
                .await
                .map_err(StoreError::from)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn reapplying_the_migration_adds_no_second_check() {
    let db = TestDatabase::migrated().await;
    let admin = db.admin().await;
    admin
        .batch_execute(include_str!("../../migrations/V6__partner_rate_limits.sql"))
        .await
        .expect("V6 runs again over itself");
    let checks: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_constraint
             WHERE conrelid = 'partners'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%rate_limit_per_minute%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(checks, 1);
}
