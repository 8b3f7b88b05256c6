//! The Redis-backed limiter against the real Redis on 127.0.0.1:6379 (or `EPAI_TEST_REDIS_URL`),
//! as several `epai serve` replicas would use it.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epai_server::rate_limit::{
    FakeRelativeClock, Quota, RateLimiter, RedisLimiter, RedisOptions, Subject,
};

fn redis_url() -> String {
    std::env::var("EPAI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A clock starting at the real current time, so the script sees realistic magnitudes.
fn clock_at_now() -> FakeRelativeClock {
    let clock = FakeRelativeClock::default();
    clock.advance(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
    clock
}

/// A limiter as one replica would hold it; replicas given the same namespace share state, and
/// every test uses its own namespace so tests running in parallel do not meet.
fn replica(url: &str, namespace: &str, clock: &FakeRelativeClock) -> RateLimiter {
    RateLimiter::Redis(
        RedisLimiter::connect(
            url,
            RedisOptions {
                namespace: namespace.to_owned(),
                clock: clock.clone().into(),
            },
        )
        .unwrap(),
    )
}

fn unique_namespace() -> String {
    format!("epai-test:rl:{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn two_replicas_share_one_budget_per_subject() {
    let clock = clock_at_now();
    let namespace = unique_namespace();
    let first = replica(&redis_url(), &namespace, &clock);
    let second = replica(&redis_url(), &namespace, &clock);
    let quota = Quota::per_minute(10);
    let subject = Subject::Key("partner-a".to_owned());

    let mut allowed = 0;
    let mut remaining_seen = Vec::new();
    for round in 0..15 {
        let replica = if round % 2 == 0 { &first } else { &second };
        let decision = replica.check(&subject, quota).await;
        assert_eq!((decision.policy, decision.limit), ("key", 10));
        if decision.allowed {
            allowed += 1;
            remaining_seen.push(decision.remaining);
            assert_eq!(decision.retry_after, None);
        } else {
            assert_eq!(decision.remaining, 0);
            assert_eq!(decision.retry_after, Some(Duration::from_secs(6)));
            assert_eq!(decision.reset_after, Duration::from_secs(60));
        }
    }
    assert_eq!(allowed, 10, "the quota holds across both replicas");
    assert_eq!(remaining_seen, (0..10).rev().collect::<Vec<u32>>());

    let other = Subject::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let decision = second.check(&other, quota).await;
    assert!(decision.allowed, "another subject has its own budget");
    assert_eq!((decision.policy, decision.remaining), ("ip", 9));
}

#[tokio::test]
async fn the_budget_refills_as_the_injected_clock_advances() {
    let clock = clock_at_now();
    let namespace = unique_namespace();
    let first = replica(&redis_url(), &namespace, &clock);
    let second = replica(&redis_url(), &namespace, &clock);
    // 7 per minute: an interval of 8571.43 ms, which does not divide evenly.
    let quota = Quota::per_minute(7);
    let subject = Subject::Key("partner-b".to_owned());
    for _ in 0..7 {
        assert!(first.check(&subject, quota).await.allowed);
    }
    let denied = second.check(&subject, quota).await;
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Some(Duration::from_millis(8572)));

    clock.advance(Duration::from_millis(8000));
    assert!(!first.check(&subject, quota).await.allowed);
    clock.advance(Duration::from_millis(572));
    let recovered = second.check(&subject, quota).await;
    assert!(recovered.allowed, "one request came back after 60/7 s");
    assert_eq!(recovered.remaining, 0);
    assert!(!first.check(&subject, quota).await.allowed);

    clock.advance(Duration::from_secs(60));
    let full = first.check(&subject, quota).await;
    assert!(full.allowed);
    assert_eq!(full.remaining, 6, "the whole quota is back after a minute");
}

#[tokio::test]
async fn quotas_of_the_same_subject_are_counted_apart() {
    let clock = clock_at_now();
    let namespace = unique_namespace();
    let limiter = replica(&redis_url(), &namespace, &clock);
    let subject = Subject::Key("partner-c".to_owned());
    assert!(limiter.check(&subject, Quota::per_minute(1)).await.allowed);
    assert!(!limiter.check(&subject, Quota::per_minute(1)).await.allowed);
    let overridden = limiter.check(&subject, Quota::per_minute(3)).await;
    assert!(overridden.allowed);
    assert_eq!(overridden.remaining, 2);
}

#[tokio::test]
async fn an_unreachable_redis_fails_open() {
    // Port 1 on loopback: nothing listens there, so every connection attempt is refused.
    let limiter = RateLimiter::redis("redis://127.0.0.1:1").unwrap();
    let subject = Subject::Key("partner-d".to_owned());
    for _ in 0..3 {
        let decision = limiter.check(&subject, Quota::per_minute(1)).await;
        assert!(decision.allowed);
        assert_eq!(decision.limit, 1);
    }
}

#[tokio::test]
async fn a_malformed_redis_url_is_refused_up_front() {
    assert!(RateLimiter::redis("not a url").is_err());
}

#[tokio::test]
async fn checks_keep_working_after_redis_forgets_the_script() {
    let clock = clock_at_now();
    let limiter = replica(&redis_url(), &unique_namespace(), &clock);
    let subject = Subject::Key("partner-e".to_owned());
    assert!(limiter.check(&subject, Quota::per_minute(2)).await.allowed);

    let mut admin = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();

    let decision = limiter.check(&subject, Quota::per_minute(2)).await;
    assert!(decision.allowed, "the script was loaded again");
    assert_eq!(decision.remaining, 0, "and the state survived");
    assert!(!limiter.check(&subject, Quota::per_minute(2)).await.allowed);
}
