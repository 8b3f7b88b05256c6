use std::time::{Instant, SystemTime, UNIX_EPOCH};

use governor::nanos::Nanos;

pub use governor::clock::FakeRelativeClock;

/// Where a limiter reads the time, so tests can move it instead of sleeping.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Real time: monotonic for in-process state, so a clock step cannot refill or drain a
    /// budget, and wall-clock for Redis, whose state replicas on different hosts must agree on.
    System { started: Instant },
    /// Time that moves only when the [`FakeRelativeClock`] is advanced; its zero is the Unix
    /// epoch.
    Manual(FakeRelativeClock),
}

impl Clock {
    pub fn system() -> Self {
        Clock::System {
            started: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch, the time base shared with other replicas.
    pub(crate) fn unix_millis(&self) -> u64 {
        match self {
            Clock::System { .. } => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                }),
            Clock::Manual(fake) => governor::clock::Clock::now(fake).as_u64() / 1_000_000,
        }
    }
}

impl From<FakeRelativeClock> for Clock {
    fn from(fake: FakeRelativeClock) -> Self {
        Clock::Manual(fake)
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            Clock::System { started } => started.elapsed().into(),
            Clock::Manual(fake) => fake.now(),
        }
    }
}
