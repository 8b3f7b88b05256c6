use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::http::HeaderMap;

use super::*;

fn limiter() -> (RateLimiter, FakeRelativeClock) {
    let fake = FakeRelativeClock::default();
    let limiter = RateLimiter::InProcess(InProcessLimiter::new(fake.clone().into()));
    (limiter, fake)
}

fn partner(id: &str) -> Subject {
    Subject::Key(id.to_owned())
}

fn header_strings(decision: &Decision) -> Vec<(String, String)> {
    let mut headers = HeaderMap::new();
    decision.write_headers(&mut headers);
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn a_fresh_subject_gets_its_whole_quota_at_once_then_is_denied() {
    let (limiter, _clock) = limiter();
    let quota = Quota::per_minute(4);
    let subject = partner("p1");
    for expected_remaining in [3, 2, 1, 0] {
        let decision = limiter.check(&subject, quota).await;
        assert!(decision.allowed);
        assert_eq!(decision.policy, "key");
        assert_eq!(decision.limit, 4);
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(
            decision.reset_after,
            Duration::from_secs(15) * (4 - expected_remaining)
        );
        assert_eq!(decision.retry_after, None);
    }
    let denied = limiter.check(&subject, quota).await;
    assert_eq!(
        denied,
        Decision {
            allowed: false,
            policy: "key",
            limit: 4,
            remaining: 0,
            reset_after: Duration::from_secs(60),
            retry_after: Some(Duration::from_secs(15)),
        }
    );
}

#[tokio::test]
async fn one_request_comes_back_per_interval_and_the_full_quota_after_a_minute() {
    let (limiter, clock) = limiter();
    let quota = Quota::per_minute(4);
    let subject = partner("p1");
    for _ in 0..4 {
        assert!(limiter.check(&subject, quota).await.allowed);
    }

    clock.advance(Duration::from_secs(10));
    let early = limiter.check(&subject, quota).await;
    assert!(!early.allowed);
    assert_eq!(early.retry_after, Some(Duration::from_secs(5)));

    clock.advance(Duration::from_secs(5));
    let recovered = limiter.check(&subject, quota).await;
    assert!(recovered.allowed);
    assert_eq!(recovered.remaining, 0);
    assert!(!limiter.check(&subject, quota).await.allowed);

    clock.advance(Duration::from_secs(60));
    for expected_remaining in [3, 2, 1, 0] {
        assert_eq!(
            limiter.check(&subject, quota).await.remaining,
            expected_remaining
        );
    }
}

#[tokio::test]
async fn subjects_are_counted_independently() {
    let (limiter, _clock) = limiter();
    let quota = Quota::per_minute(2);
    let ip = Subject::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    for _ in 0..2 {
        assert!(limiter.check(&partner("a"), quota).await.allowed);
    }
    assert!(!limiter.check(&partner("a"), quota).await.allowed);

    assert_eq!(limiter.check(&partner("b"), quota).await.remaining, 1);
    let by_ip = limiter.check(&ip, quota).await;
    assert!(by_ip.allowed);
    assert_eq!(by_ip.policy, "ip");
    assert_eq!(by_ip.remaining, 1);
}

#[tokio::test]
async fn a_partner_override_has_its_own_budget() {
    let (limiter, _clock) = limiter();
    let subject = partner("p1");
    for _ in 0..2 {
        assert!(limiter.check(&subject, Quota::per_minute(2)).await.allowed);
    }
    assert!(!limiter.check(&subject, Quota::per_minute(2)).await.allowed);

    let raised = limiter.check(&subject, Quota::per_minute(5)).await;
    assert!(raised.allowed);
    assert_eq!((raised.limit, raised.remaining), (5, 4));
    assert!(
        !limiter
            .check(&partner("p1"), Quota::per_minute(2))
            .await
            .allowed
    );
}

#[tokio::test]
async fn a_quota_of_zero_allows_everything_and_writes_no_headers() {
    let (limiter, _clock) = limiter();
    for _ in 0..1000 {
        let decision = limiter.check(&partner("p1"), Quota::OFF).await;
        assert!(decision.allowed);
        assert_eq!(decision.limit, 0);
        assert!(header_strings(&decision).is_empty());
    }
    let RateLimiter::InProcess(in_process) = &limiter else {
        unreachable!()
    };
    assert_eq!(
        in_process.tracked_subjects(),
        0,
        "no state for an off policy"
    );
}

#[test]
fn headers_carry_the_draft_fields_and_the_legacy_ones() {
    let allowed = Decision {
        allowed: true,
        policy: "key",
        limit: 120,
        remaining: 87,
        reset_after: Duration::from_millis(11_200),
        retry_after: None,
    };
    assert_eq!(
        header_strings(&allowed),
        [
            ("ratelimit", "\"key\";r=87;t=12"),
            ("ratelimit-policy", "\"key\";q=120;w=60"),
            ("x-ratelimit-limit", "120"),
            ("x-ratelimit-remaining", "87"),
            ("x-ratelimit-reset", "12"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
}

#[test]
fn a_denial_adds_retry_after_in_whole_seconds_rounded_up_and_at_least_one() {
    let denied = |retry_after: Duration| Decision {
        allowed: false,
        policy: "ip",
        limit: 30,
        remaining: 0,
        reset_after: Duration::from_secs(60),
        retry_after: Some(retry_after),
    };
    let retry_after_of = |decision: Decision| {
        let mut headers = HeaderMap::new();
        decision.write_headers(&mut headers);
        assert_eq!(headers["ratelimit"], "\"ip\";r=0;t=60");
        assert_eq!(headers["ratelimit-policy"], "\"ip\";q=30;w=60");
        headers["retry-after"].to_str().unwrap().to_owned()
    };
    assert_eq!(retry_after_of(denied(Duration::from_millis(1500))), "2");
    assert_eq!(retry_after_of(denied(Duration::from_secs(2))), "2");
    assert_eq!(retry_after_of(denied(Duration::from_millis(1))), "1");
    assert_eq!(retry_after_of(denied(Duration::ZERO)), "1");
}

#[tokio::test]
async fn pruning_forgets_idle_subjects_and_keeps_active_ones() {
    let fake = FakeRelativeClock::default();
    let limiter = InProcessLimiter::new(fake.clone().into());
    let quota = Quota::per_minute(4);
    let checker = RateLimiter::InProcess(limiter.clone());
    for n in 0..50 {
        checker
            .check(&Subject::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))), quota)
            .await;
    }
    checker
        .check(&partner("override"), Quota::per_minute(9))
        .await;
    for _ in 0..4 {
        checker.check(&partner("busy"), quota).await;
    }
    assert_eq!(limiter.tracked_subjects(), 52);

    fake.advance(Duration::from_secs(70));
    for _ in 0..4 {
        assert!(checker.check(&partner("busy"), quota).await.allowed);
    }
    limiter.prune();
    assert_eq!(
        limiter.tracked_subjects(),
        1,
        "only the subject still spending its budget is kept"
    );
    let still_counted = checker.check(&partner("busy"), quota).await;
    assert!(
        !still_counted.allowed,
        "pruning kept the busy subject's spent budget"
    );

    fake.advance(Duration::from_secs(120));
    limiter.prune();
    assert_eq!(limiter.tracked_subjects(), 0);
}

#[tokio::test]
async fn pruning_happens_by_itself_as_checks_go_by() {
    let fake = FakeRelativeClock::default();
    let limiter = InProcessLimiter::new(fake.clone().into());
    let checker = RateLimiter::InProcess(limiter.clone());
    let quota = Quota::per_minute(1);
    checker.check(&partner("once"), quota).await;
    fake.advance(Duration::from_secs(600));
    for _ in 0..in_process::PRUNE_EVERY_CHECKS {
        checker.check(&partner("steady"), quota).await;
    }
    assert_eq!(limiter.tracked_subjects(), 1, "the idle subject was pruned");
}

#[test]
fn settings_apply_a_partner_override_or_the_default_and_hide_the_redis_url() {
    let settings = RateLimitSettings {
        per_key: Quota::per_minute(DEFAULT_PER_KEY),
        per_ip: Quota::per_minute(DEFAULT_PER_IP),
        redis_url: Some("redis://:hunter2@cache:6379".to_owned()),
    };
    assert_eq!(settings.key_quota(None), Quota::per_minute(120));
    assert_eq!(settings.key_quota(Some(500)), Quota::per_minute(500));
    assert_eq!(settings.key_quota(Some(0)), Quota::OFF);
    assert!(!format!("{settings:?}").contains("hunter2"));
}
