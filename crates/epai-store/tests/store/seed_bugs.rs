//! One regression test per seed bug listed in DESIGN.md §2. Each runs the same check against a
//! database with the seed's original SQL (where it must fail: the bug is real) and against a
//! migrated database (where it must pass: the bug is fixed).

use epai_domain::ApiKey;
use epai_store::testing::TestDatabase;
use tokio_postgres::Client;

use crate::support::*;

type Check = Result<(), String>;

async fn assert_bug_fixed<F>(check: F)
where
    F: AsyncFn(&TestDatabase) -> Check,
{
    let seed = seed_database().await;
    let seed_outcome = check(&seed).await;
    assert!(
        seed_outcome.is_err(),
        "the check passed on the seed's original SQL, so it does not detect the bug"
    );
    let fixed = TestDatabase::migrated().await;
    if let Err(why) = check(&fixed).await {
        panic!("bug not fixed by the migrations: {why}");
    }
}

fn fail(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// Bug 1: RLS never enabled — partner A could read partner B's events.
#[tokio::test]
async fn bug1_row_level_security_is_enabled_so_a_partner_sees_only_its_rows() {
    assert_bug_fixed(async |db| {
        let mut admin = db.admin().await;
        let a = insert_partner(&admin, "a").await;
        let b = insert_partner(&admin, "b").await;
        let model = insert_model(&admin).await;
        insert_tenant_rows(&admin, &a, model).await;
        insert_tenant_rows(&admin, &b, model).await;
        let tx = begin_as(&mut admin, Some(a.user)).await;
        let rows = tx
            .query("SELECT partner_id FROM ingestion_events", &[])
            .await
            .map_err(fail)?;
        let foreign = rows
            .iter()
            .filter(|r| r.get::<_, uuid::Uuid>(0) != a.partner.as_uuid())
            .count();
        if foreign > 0 {
            return Err(format!("partner A saw {foreign} of partner B's events"));
        }
        let unprotected: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname::text = ANY($1::text[]) AND NOT relrowsecurity",
                &[&vec![
                    "partners",
                    "api_keys",
                    "models",
                    "ingestion_events",
                    "insights",
                    "logs",
                    "security_events",
                ]],
            )
            .await
            .map_err(fail)?
            .get(0);
        if unprotected > 0 {
            return Err(format!("{unprotected} tables without row-level security"));
        }
        Ok(())
    })
    .await;
}

/// Bug 2: get_partner_usage_summary failed at runtime (ambiguous `date`, bigint vs INTEGER).
#[tokio::test]
async fn bug2_usage_summary_runs_and_returns_integer_counts() {
    assert_bug_fixed(async |db| {
        let mut admin = db.admin().await;
        let a = insert_partner(&admin, "a").await;
        insert_tenant_rows(&admin, &a, insert_model(&admin).await).await;
        let tx = begin_as(&mut admin, Some(a.user)).await;
        let rows = tx
            .query("SELECT * FROM get_partner_usage_summary(7)", &[])
            .await
            .map_err(fail)?;
        if rows.len() != 7 {
            return Err(format!("expected 7 days, got {}", rows.len()));
        }
        let events: i32 = rows
            .iter()
            .map(|r| r.try_get::<_, i32>("event_count"))
            .sum::<Result<i32, _>>()
            .map_err(fail)?;
        if events != 1 {
            return Err(format!("expected 1 event, counted {events}"));
        }
        Ok(())
    })
    .await;
}

/// Bug 3: regenerate_api_key_for_partner stored a key without partner for a user without one.
#[tokio::test]
async fn bug3_regenerating_a_key_without_a_partner_is_an_error() {
    assert_bug_fixed(async |db| {
        let mut admin = db.admin().await;
        let lonely = insert_user_without_partner(&admin).await;
        let tx = begin_as(&mut admin, Some(lonely)).await;
        let outcome = tx
            .query("SELECT * FROM regenerate_api_key_for_partner()", &[])
            .await;
        tx.rollback().await.map_err(fail)?;
        let orphans: i64 = admin
            .query_one(
                "SELECT count(*) FROM api_keys WHERE partner_id IS NULL",
                &[],
            )
            .await
            .map_err(fail)?
            .get(0);
        match outcome {
            Ok(_) => Err(format!(
                "a key was issued without a partner ({orphans} orphan keys)"
            )),
            Err(e) if e.code().map(|c| c.code()) == Some("P0002") && orphans == 0 => Ok(()),
            Err(e) => Err(format!("unexpected failure: {e}")),
        }
    })
    .await;
}

async fn issue_key(admin: &mut Client, user: epai_domain::AuthUserId) -> Result<String, String> {
    let tx = begin_as(admin, Some(user)).await;
    let key: String = tx
        .query_one("SELECT api_key FROM regenerate_api_key_for_partner()", &[])
        .await
        .map_err(fail)?
        .get(0);
    tx.commit().await.map_err(fail)?;
    Ok(key)
}

/// Bug 4: bcrypt hashes made verification an O(keys) scan; keys are stored as indexed SHA-256.
#[tokio::test]
async fn bug4_keys_are_stored_as_indexed_sha256_lookup_hashes() {
    assert_bug_fixed(async |db| {
        let mut admin = db.admin().await;
        let a = insert_partner(&admin, "a").await;
        let key = issue_key(&mut admin, a.user).await?;
        let stored: String = admin
            .query_one(
                "SELECT key_hash FROM api_keys WHERE partner_id = $1",
                &[&a.partner.as_uuid()],
            )
            .await
            .map_err(fail)?
            .get(0);
        let parsed = ApiKey::parse(&key).map_err(|e| format!("{key}: {e}"))?;
        if stored != parsed.hash().as_str() {
            return Err(format!("key_hash is not SHA-256 of the key: {stored}"));
        }
        let indexed: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'api_keys' AND indexdef LIKE '%(key_hash)%')",
                &[],
            )
            .await
            .map_err(fail)?
            .get(0);
        if !indexed {
            return Err("key_hash has no index".into());
        }
        Ok(())
    })
    .await;
}

/// Bug 5: base64 keys contained `+`, `/` and `=`; keys are base64url without padding.
#[tokio::test]
async fn bug5_keys_are_base64url_without_padding() {
    assert_bug_fixed(async |db| {
        let mut admin = db.admin().await;
        let a = insert_partner(&admin, "a").await;
        // A base64 key of 24 bytes avoids `+` and `/` with probability (62/64)^32 ≈ 36%;
        // forty keys in a row would be a 1-in-10^17 accident.
        for _ in 0..40 {
            let key = issue_key(&mut admin, a.user).await?;
            if key.contains(['+', '/', '=']) || ApiKey::parse(&key).is_err() {
                return Err(format!(
                    "key {key:?} is not epai_ + 32 base64url characters"
                ));
            }
        }
        Ok(())
    })
    .await;
}

/// Bug 6: SECURITY DEFINER functions without a pinned search_path could be hijacked.
#[tokio::test]
async fn bug6_security_definer_functions_pin_their_search_path() {
    assert_bug_fixed(async |db| {
        let admin = db.admin().await;
        let rows = admin
            .query(
                "SELECT p.proname::text, coalesce(array_to_string(p.proconfig, ','), '')
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'public' AND p.prosecdef",
                &[],
            )
            .await
            .map_err(fail)?;
        if rows.len() < 4 {
            return Err(format!(
                "expected the four seed functions, found {}",
                rows.len()
            ));
        }
        let unpinned: Vec<String> = rows
            .iter()
            .filter(|r| !r.get::<_, String>(1).contains("search_path=pg_catalog"))
            .map(|r| r.get(0))
            .collect();
        if unpinned.is_empty() {
            Ok(())
        } else {
            Err(format!("search_path not pinned in {unpinned:?}"))
        }
    })
    .await;
}

/// Bug 7: policies evaluated auth.uid() per row; they must use `(SELECT auth.uid())` and the
/// columns they filter on must be indexed.
#[tokio::test]
async fn bug7_policies_evaluate_the_uid_once_and_their_columns_are_indexed() {
    assert_bug_fixed(async |db| {
        let admin = db.admin().await;
        let per_row: Vec<String> = admin
            .query(
                "SELECT policyname::text FROM pg_policies
                 WHERE schemaname = 'public'
                   AND coalesce(qual, '') || coalesce(with_check, '') LIKE '%auth.uid()%'
                   AND coalesce(qual, '') || coalesce(with_check, '') NOT LIKE '%SELECT auth.uid() AS uid%'",
                &[],
            )
            .await
            .map_err(fail)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !per_row.is_empty() {
            return Err(format!("auth.uid() evaluated per row in {per_row:?}"));
        }
        for (table, column) in [
            ("partners", "user_id"),
            ("ingestion_events", "partner_id"),
            ("ingestion_event_daily_counts", "partner_id"),
            ("ingestion_entity_daily_counts", "partner_id"),
            ("insights", "partner_id"),
            ("logs", "partner_id"),
            ("security_events", "partner_id"),
            ("webhooks", "partner_id"),
            ("webhook_deliveries", "partner_id"),
        ] {
            let indexed: bool = admin
                .query_one(
                    "SELECT EXISTS (
                       SELECT 1 FROM pg_index i
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                       WHERE i.indrelid = to_regclass($1) AND a.attname::text = $2)",
                    &[&table, &column],
                )
                .await
                .map_err(fail)?
                .get(0);
            if !indexed {
                return Err(format!("{table}.{column} has no index leading with it"));
            }
        }
        Ok(())
    })
    .await;
}
