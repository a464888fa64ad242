//! When to renew a certificate: at 80% of its lifetime, moved earlier by a random jitter so a
//! fleet issued at once does not renew at once.

/// A renewal policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotationPolicy {
    /// The share of the lifetime after which to renew (0.8).
    pub fraction: f64,
    /// The largest share of the lifetime the renewal is moved earlier by (0.05).
    pub jitter: f64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            fraction: 0.8,
            jitter: 0.05,
        }
    }
}

impl RotationPolicy {
    /// The Unix second at which to renew a certificate valid from `not_before` to `not_after`.
    /// `sample` is a uniform random number in `[0, 1)`; the result lies in
    /// `[not_before + (fraction - jitter) * lifetime, not_before + fraction * lifetime]`, so a
    /// renewal never comes later than 80% of the lifetime.
    pub fn renew_at(&self, not_before: i64, not_after: i64, sample: f64) -> i64 {
        let life = (not_after - not_before).max(0) as f64;
        let sample = if sample.is_finite() {
            sample.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let share = (self.fraction - self.jitter * sample).clamp(0.0, 1.0);
        not_before + (life * share).floor() as i64
    }

    /// Whether a certificate valid from `not_before` to `not_after` is due for renewal at `now`.
    pub fn due(&self, not_before: i64, not_after: i64, now: i64, sample: f64) -> bool {
        now >= self.renew_at(not_before, not_after, sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_75_and_80_percent_of_the_lifetime() {
        let p = RotationPolicy::default();
        let day = 86_400;
        assert_eq!(p.renew_at(0, day, 0.0), (day as f64 * 0.8) as i64);
        assert_eq!(
            p.renew_at(0, day, 0.999_999),
            (day as f64 * 0.75) as i64 + 1 - 1
        );
        for s in [0.1, 0.5, 0.9] {
            let at = p.renew_at(1000, 1000 + day, s);
            assert!(
                at >= 1000 + (day as f64 * 0.75) as i64 && at <= 1000 + (day as f64 * 0.8) as i64
            );
        }
    }

    #[test]
    fn bad_samples_and_inverted_validity_do_not_move_renewal_later() {
        let p = RotationPolicy::default();
        assert_eq!(p.renew_at(0, 100, f64::NAN), 80);
        assert_eq!(p.renew_at(0, 100, 7.0), 75);
        assert_eq!(
            p.renew_at(100, 0, 0.5),
            100,
            "an inverted validity renews at once"
        );
        assert!(p.due(0, 100, 80, 0.0));
        assert!(!p.due(0, 100, 79, 0.0));
    }
}
