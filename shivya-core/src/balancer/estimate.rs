//! L1 for the balancer: one Gaussian belief per backend.
//!
//! * Delay per request (`svc`: latency over one plus the requests queued with it): a
//!   scalar Kalman filter on its log. Between observations the variance
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
//!   The per-request decision uses less of it (see `OthersInFlight::decision_term`): a
//!   backend that was momentarily empty in an old record must not be what every
//!   balancer rushes to at once (the herding that stale least-load views cause).

/// The others' in-flight count forgets its past over this many latencies.
pub const RELAX_LATENCIES: f64 = 4.0;
/// A report's deviation from its mean is trusted for about this many service times.
pub const TRUST_SERVICES: f64 = 3.0;
/// Variance of one `ln(latency)` observation.
pub const OBS_VAR: f64 = 4.0;
/// Weight of one innovation in the running surprise.
pub const SURPRISE_WEIGHT: f64 = 0.1;
/// A running surprise beyond this (in `ln` units: a factor of about 2) resets the gain.
pub const SURPRISE_LIMIT: f64 = 0.7;
/// Growth of the `ln(latency)` variance per millisecond without observations.
pub const DRIFT_PER_MS: f64 = 1e-3;
/// Largest standard deviation reported (a belief never grows past "no idea").
const MAX_SD: f64 = 3.0;
/// Shortest latency taken as an observation, ms (a log must stay finite).
const MIN_LATENCY_MS: f64 = 0.01;
/// A failed or refused request counts as a latency this many times the current estimate.
pub const FAILURE_PENALTY: f64 = 4.0;

/// What the balancer believes about one backend: the delay one request adds there
/// (`svc`, ms: the observed latency over one plus the requests queued with it, which for
/// a FIFO server is its service time) and the latency itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LatencyBelief {
    mean_ln: f64,
    var: f64,
    at_ms: u64,
    observed: bool,
    /// Exponential average of the innovations (zero while the belief is right).
    surprise: f64,
    /// Plain exponential average of `svc` (what is used with L1 switched off).
    ewma_svc: f64,
    /// Exponential average of the observed latency, ms.
    pub(super) ewma_latency: f64,
    /// Share of recent requests that failed (exponential average, 0..1).
    pub(super) err: f64,
}

impl LatencyBelief {
    pub(super) fn new(prior_ms: f64, now_ms: u64) -> LatencyBelief {
        LatencyBelief {
            mean_ln: prior_ms.max(MIN_LATENCY_MS).ln(),
            var: 1.0,
            at_ms: now_ms,
            observed: false,
            surprise: 0.0,
            ewma_svc: prior_ms,
            ewma_latency: prior_ms,
            err: 0.0,
        }
    }

    /// Moves the prior (before the first observation only).
    pub(super) fn set_prior(&mut self, prior_ms: f64) {
        if !self.observed {
            let at = self.at_ms;
            *self = LatencyBelief::new(prior_ms, at);
        }
    }

    fn predicted_var(&self, now_ms: u64) -> f64 {
        self.var + DRIFT_PER_MS * now_ms.saturating_sub(self.at_ms) as f64
    }

    /// One finished request: its latency, how many requests were queued with it (the
    /// requests still in flight there when it ended; for a FIFO server, in steady state,
    /// distributed as those it found ahead of it) and whether it failed.
    pub(super) fn observe(&mut self, latency_ms: f64, queued: f64, failed: bool, now_ms: u64) {
        let svc = latency_ms / (1.0 + queued.max(0.0));
        let mut y = svc.max(MIN_LATENCY_MS).ln();
        if failed {
            y = y.max(self.mean_ln + FAILURE_PENALTY.ln());
        }
        // A persistent run of surprises in one direction (the backend changed, not noise)
        // widens the belief so that it moves at once instead of at the steady gain.
        self.surprise += SURPRISE_WEIGHT * (y - self.mean_ln - self.surprise);
        let mut p = self.predicted_var(now_ms);
        if self.surprise.abs() > SURPRISE_LIMIT {
            p += self.surprise * self.surprise;
            self.surprise = 0.0;
        }
        let k = p / (p + OBS_VAR);
        self.mean_ln += k * (y - self.mean_ln);
        self.var = (1.0 - k) * p;
        self.at_ms = self.at_ms.max(now_ms);
        self.observed = true;
        self.ewma_svc += 0.2 * (y.exp() - self.ewma_svc);
        self.ewma_latency += 0.2 * (latency_ms - self.ewma_latency);
        self.err += 0.1 * (f64::from(u8::from(failed)) - self.err);
    }

    /// The delay one more request adds, ms: filtered, or the plain average without L1.
    pub(super) fn svc_ms(&self, filter: bool) -> f64 {
        if filter {
            self.mean_ln.exp()
        } else {
            self.ewma_svc.max(MIN_LATENCY_MS)
        }
    }

    /// Standard deviation of `ln(svc)` now (0 without L1).
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
    /// The long-run mean of our own published load there (same average).
    pub(super) own_mean: f64,
}

/// Weight of one refresh in the long-run means (about 20 refreshes: a second at the
/// default 50 ms period).
const MEAN_WEIGHT: f64 = 0.05;

impl OthersInFlight {
    pub(super) fn update(&mut self, reported: f64, own: f64, now_ms: u64) {
        if reported.to_bits() != self.reported.to_bits() {
            self.reported = reported;
            self.since_ms = now_ms;
        }
        self.mean += MEAN_WEIGHT * (reported - self.mean);
        self.own_mean += MEAN_WEIGHT * (own - self.own_mean);
    }

    fn age(&self, now_ms: u64, extra_age_ms: f64) -> f64 {
        now_ms.saturating_sub(self.since_ms) as f64 + extra_age_ms
    }

    /// The best estimate of the others' requests now: with L1, relaxed from the report
    /// towards the long-run mean over [`RELAX_LATENCIES`] latencies as it ages (for the
    /// delay estimate and the law); without, the report as it is.
    pub(super) fn level(
        &self,
        filter: bool,
        now_ms: u64,
        extra_age_ms: f64,
        latency_ms: f64,
    ) -> f64 {
        if !filter {
            return self.reported;
        }
        let keep =
            (-self.age(now_ms, extra_age_ms) / (RELAX_LATENCIES * latency_ms).max(1.0)).exp();
        self.mean + (self.reported - self.mean) * keep
    }

    /// What the per-request decision adds for the others. With L1, two parts:
    /// * the long-run excess of the others' load over what `peers` balancers behaving
    ///   like this one would put there, shrunk by `peers + 1` (zero on average when
    ///   every balancer sees the same traffic; large when one balancer loads a backend
    ///   the others do not, which no local policy can know);
    /// * the report's deviation from its mean, trusted by `exp(−(age / (TRUST_SERVICES
    ///   · svc))²)`, where `age` is how old records are when they arrive: a snapshot
    ///   older than a few service times is noise that every balancer would act on at
    ///   once (herding), a young one is worth acting on.
    ///
    /// Both were measured (docs/PERFORMANCE.md): the plain report or its mean in the
    /// decision made the tail worse at the default gossip period. Without L1, the
    /// report as it is.
    pub(super) fn decision_term(&self, filter: bool, peers: f64, age_ms: f64, svc_ms: f64) -> f64 {
        if !filter {
            return self.reported;
        }
        let excess = (self.mean - peers * self.own_mean) / (peers + 1.0);
        let x = age_ms / (TRUST_SERVICES * svc_ms).max(1e-3);
        excess + (-x * x).exp() * (self.reported - self.mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_follows_a_step_and_its_gain_grows_with_silence() {
        let mut b = LatencyBelief::new(10.0, 0);
        for t in 0..200 {
            b.observe(10.0, 0.0, false, t);
        }
        assert!((b.svc_ms(true) - 10.0).abs() < 0.1);
        // Ten times slower: within 100 ms of observations at 1/ms the estimate is past 5x.
        for t in 200..300 {
            b.observe(100.0, 0.0, false, t);
        }
        assert!(b.svc_ms(true) > 50.0, "{}", b.svc_ms(true));
        // After a second of silence one observation moves the belief further than one
        // observation after a millisecond does.
        let (mut quick, mut late) = (b, b);
        quick.observe(10.0, 0.0, false, 301);
        late.observe(10.0, 0.0, false, 1_300);
        assert!(late.svc_ms(true) < quick.svc_ms(true));
        assert!(b.sd(true, 1_300) > b.sd(true, 301));
        assert_eq!(b.sd(false, 1_300), 0.0);
    }

    #[test]
    fn failures_count_as_slow_and_raise_the_error_share() {
        let mut b = LatencyBelief::new(10.0, 0);
        for t in 0..50 {
            b.observe(10.0, 0.0, false, t);
        }
        let before = b.svc_ms(true);
        for t in 50..60 {
            b.observe(0.5, 0.0, true, t);
        }
        assert!(b.svc_ms(true) > before, "a fast failure is not good news");
        assert!(b.err > 0.5);
    }

    #[test]
    fn latency_shared_with_queued_requests_is_divided_among_them() {
        let mut b = LatencyBelief::new(1.0, 0);
        for t in 0..500 {
            // 40 ms with 3 others queued: 10 ms each.
            b.observe(40.0, 3.0, false, t);
        }
        assert!((b.svc_ms(true) - 10.0).abs() < 0.2, "{}", b.svc_ms(true));
        assert!((b.ewma_latency - 40.0).abs() < 1e-6);
    }

    #[test]
    fn an_old_report_relaxes_to_the_mean() {
        let mut o = OthersInFlight::default();
        for t in 0..200 {
            o.update(4.0, 0.0, t);
        }
        o.update(0.0, 0.0, 200);
        let fresh = o.level(true, 200, 0.0, 10.0);
        let old = o.level(true, 400, 0.0, 10.0);
        assert!(fresh < 0.5, "{fresh}");
        assert!(old > 3.0, "{old}");
        assert_eq!(o.level(false, 400, 0.0, 10.0), 0.0);
    }

    #[test]
    fn the_decision_counts_only_what_our_own_share_does_not_predict() {
        // Seven peers behaving like us: the others' load is seven times ours, no excess.
        let mut same = OthersInFlight::default();
        // One peer loading the backend alone: all of its load is excess.
        let mut alone = OthersInFlight::default();
        for t in 0..400 {
            same.update(7.0, 1.0, t);
            alone.update(7.0, 0.0, t);
        }
        let a = same.decision_term(true, 7.0, 50.0, 5.0);
        let b = alone.decision_term(true, 7.0, 50.0, 5.0);
        assert!(a.abs() < 0.1, "{a}");
        // 7 in flight from one peer, shrunk by the 8 balancers: still most of a request.
        assert!(b > 0.8, "{b}");
        // A dip below the mean counts when records arrive young, not when they are old
        // next to the backend's service time.
        same.update(1.0, 1.0, 400);
        let young = same.decision_term(true, 7.0, 1.0, 5.0);
        let old = same.decision_term(true, 7.0, 60.0, 5.0);
        assert!(young < -5.0, "{young}");
        assert!(old.abs() < 0.5, "{old}");
        assert_eq!(same.decision_term(false, 7.0, 60.0, 5.0), 1.0);
    }
}
