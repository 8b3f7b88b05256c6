//! Seeded generators of synthetic data with known structure, for the models' tests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal draw (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Poisson draw: Knuth's method for small means, a rounded normal approximation above.
pub fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0);
    }
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut count = 0.0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1.0;
    }
    count
}

/// Weekly multipliers of a typical product: busy weekdays, quiet weekends.
pub const WEEKLY_PATTERN: [f64; 7] = [1.1, 1.15, 1.1, 1.05, 1.0, 0.75, 0.85];

/// Daily counts with a linear trend, weekly seasonality and Poisson noise.
pub fn trending_weekly_counts(seed: u64, days: usize, start: f64, slope: f64) -> Vec<f64> {
    let mut rng = rng(seed);
    (0..days)
        .map(|t| poisson(&mut rng, expected_trending_weekly(t, start, slope)))
        .collect()
}

pub fn expected_trending_weekly(t: usize, start: f64, slope: f64) -> f64 {
    (start + slope * t as f64) * WEEKLY_PATTERN[t % 7]
}
