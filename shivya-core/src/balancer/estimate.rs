//! L1 for the balancer: one Gaussian belief per backend.
//!
//! * Latency: a scalar Kalman filter on `ln(latency)`. Between observations the variance
//!   grows by [`DRIFT_PER_MS`] per millisecond (a random walk: backends change), each
//!   observation has variance [`OBS_VAR`]. The gain therefore adapts to the rate at which
//!   a balancer hears from a backend: a backend sent to often moves by small steps, one
//!   not heard from for a while moves fast, and its uncertainty (`sd`) is an input of the
//!   weight law (a backend nobody has measured lately is worth a look).
//! * The other balancers' requests in flight: an Ornstein–Uhlenbeck prediction. The
//!   merged records say what the others had in flight some time ago; a backend's in-flight
//!   count forgets its past over a few latencies ([`RELAX_LATENCIES`]; a queue near
//!   saturation forgets more slowly, and its latency is longer too), so the prediction at
//!   the moment of use relaxes from the reported value towards its long-run mean as the
//!   report ages.
//!   A backend that was momentarily empty in an old record is therefore not what every
//!   balancer rushes to at once (the herding that stale least-load views cause).

/// The others' in-flight count forgets its past over this many latencies.
pub const RELAX_LATENCIES: f64 = 4.0;
/// Variance of one `ln(latency)` observation.
pub const OBS_VAR: f64 = 0.25;
/// Growth of the `ln(latency)` variance per millisecond without observations.
pub const DRIFT_PER_MS: f64 = 1e-3;
/// Largest standard deviation reported (a belief never grows past "no idea").
const MAX_SD: f64 = 3.0;
/// Shortest latency taken as an observation, ms (a log must stay finite).
const MIN_LATENCY_MS: f64 = 0.01;
/// A failed or refused request counts as a latency this many times the current estimate.
pub const FAILURE_PENALTY: f64 = 4.0;

/// What the balancer believes about one backend's latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LatencyBelief {
    mean_ln: f64,
    var: f64,
    at_ms: u64,
    /// Plain exponential average (what is used with L1 switched off).
    ewma_ms: f64,
    /// Share of recent requests that failed (exponential average, 0..1).
    pub(super) err: f64,
}

impl LatencyBelief {
    pub(super) fn new(prior_ms: f64, now_ms: u64) -> LatencyBelief {
        LatencyBelief {
            mean_ln: prior_ms.max(MIN_LATENCY_MS).ln(),
            var: 1.0,
            at_ms: now_ms,
            ewma_ms: prior_ms,
            err: 0.0,
        }
    }

    fn predicted_var(&self, now_ms: u64) -> f64 {
        self.var + DRIFT_PER_MS * now_ms.saturating_sub(self.at_ms) as f64
    }

    /// One finished request: its latency and whether it failed.
    pub(super) fn observe(&mut self, latency_ms: f64, failed: bool, now_ms: u64) {
        let mut y = latency_ms.max(MIN_LATENCY_MS).ln();
        if failed {
            y = y.max(self.mean_ln + FAILURE_PENALTY.ln());
        }
        let p = self.predicted_var(now_ms);
        let k = p / (p + OBS_VAR);
        self.mean_ln += k * (y - self.mean_ln);
        self.var = (1.0 - k) * p;
        self.at_ms = self.at_ms.max(now_ms);
        self.ewma_ms += 0.2 * (y.exp() - self.ewma_ms);
        self.err += 0.1 * (f64::from(u8::from(failed)) - self.err);
    }

    /// The latency estimate, ms: the filtered one, or the plain average without L1.
    pub(super) fn latency_ms(&self, filter: bool) -> f64 {
        if filter {
            self.mean_ln.exp()
        } else {
            self.ewma_ms.max(MIN_LATENCY_MS)
        }
    }

    /// Standard deviation of `ln(latency)` now (0 without L1).
    pub(super) fn sd(&self, filter: bool, now_ms: u64) -> f64 {
        if filter {
            self.predicted_var(now_ms).sqrt().min(MAX_SD)
        } else {
            0.0
        }
    }
}

/// What the other balancers have in flight at one backend, as the records last said.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct OthersInFlight {
    /// The value in the merged records, minus our own part.
    pub(super) reported: f64,
    /// When that value last changed here.
    pub(super) since_ms: u64,
    /// Its long-run mean (exponential average over refreshes).
    pub(super) mean: f64,
}

impl OthersInFlight {
    pub(super) fn update(&mut self, reported: f64, now_ms: u64) {
        if reported.to_bits() != self.reported.to_bits() {
            self.reported = reported;
            self.since_ms = now_ms;
        }
        self.mean += 0.1 * (reported - self.mean);
    }

    /// The prediction at `now_ms`: with L1, relaxed towards the mean over `tau_ms` for a
    /// report `extra_age_ms` older than when it arrived, `tau_ms` being the backend's
    /// latency; without, the report as it is.
    pub(super) fn predict(&self, filter: bool, now_ms: u64, extra_age_ms: f64, tau_ms: f64) -> f64 {
        if !filter {
            return self.reported;
        }
        let age = now_ms.saturating_sub(self.since_ms) as f64 + extra_age_ms;
        let keep = (-age / (RELAX_LATENCIES * tau_ms).max(1.0)).exp();
        self.mean + (self.reported - self.mean) * keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_follows_a_step_and_its_gain_grows_with_silence() {
        let mut b = LatencyBelief::new(10.0, 0);
        for t in 0..200 {
            b.observe(10.0, false, t);
        }
        assert!((b.latency_ms(true) - 10.0).abs() < 0.1);
        // Ten times slower: within 100 ms of observations at 1/ms the estimate is past 5x.
        for t in 200..300 {
            b.observe(100.0, false, t);
        }
        assert!(b.latency_ms(true) > 50.0, "{}", b.latency_ms(true));
        // After a second of silence one observation moves the belief further than one
        // observation after a millisecond does.
        let (mut quick, mut late) = (b, b);
        quick.observe(10.0, false, 301);
        late.observe(10.0, false, 1_300);
        assert!(late.latency_ms(true) < quick.latency_ms(true));
        assert!(b.sd(true, 1_300) > b.sd(true, 301));
        assert_eq!(b.sd(false, 1_300), 0.0);
    }

    #[test]
    fn failures_count_as_slow_and_raise_the_error_share() {
        let mut b = LatencyBelief::new(10.0, 0);
        for t in 0..50 {
            b.observe(10.0, false, t);
        }
        let before = b.latency_ms(true);
        for t in 50..60 {
            b.observe(0.5, true, t);
        }
        assert!(
            b.latency_ms(true) > before,
            "a fast failure is not good news"
        );
        assert!(b.err > 0.5);
    }

    #[test]
    fn an_old_report_relaxes_to_the_mean() {
        let mut o = OthersInFlight::default();
        for t in 0..100 {
            o.update(4.0, t);
        }
        o.update(0.0, 100);
        let fresh = o.predict(true, 100, 0.0, 10.0);
        let old = o.predict(true, 300, 0.0, 10.0);
        assert!(fresh < 0.5, "{fresh}");
        assert!(old > 3.0, "{old}");
        assert_eq!(o.predict(false, 150, 0.0, 10.0), 0.0);
    }
}
