//! Host telemetry through `sysinfo` (feature `host-telemetry`): CPU load, memory pressure
//! and NIC byte rates, mapped onto a node's observation.
//!
//! Mapping (documented contract, used by `shivyad`):
//! * `load = 0.7 · cpu + 0.3 · memory`, both in `[0, 1]` (cpu = mean utilisation of all
//!   cores since the previous sample; memory = 1 − available / total);
//! * observation `[10 · load, ln(1 + (rx + tx) / 1 MiB/s)]`, the shape of the agent's
//!   two-dimensional observation (a load level and a traffic level);
//! * the node's queue length at its own vertex is `10 · load` (so the mesh moves work away
//!   from busy hosts).
//!
//! Nothing here panics: a failed or implausible reading yields `None` ("no observation"),
//! and the caller keeps its previous inputs. Time is an argument, as everywhere in the
//! core; the rates are computed from the caller's `now_ms`.

use sysinfo::{Networks, System};

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    /// Mean CPU utilisation over all cores, `[0, 1]`.
    pub cpu: f64,
    /// Memory pressure `1 − available / total`, `[0, 1]`.
    pub memory: f64,
    /// Bytes received per second over all interfaces since the previous sample.
    pub rx_bytes_per_s: f64,
    /// Bytes sent per second.
    pub tx_bytes_per_s: f64,
}

impl HostSample {
    /// `0.7 · cpu + 0.3 · memory`.
    pub fn load(&self) -> f64 {
        0.7 * self.cpu + 0.3 * self.memory
    }

    /// The node observation `[10 · load, ln(1 + traffic in MiB/s)]`.
    pub fn observation(&self) -> [f64; 2] {
        let mib = (self.rx_bytes_per_s + self.tx_bytes_per_s) / (1024.0 * 1024.0);
        [10.0 * self.load(), mib.ln_1p()]
    }
}

/// A sampler that remembers the previous counters to turn them into rates.
pub struct HostTelemetry {
    system: Option<System>,
    networks: Option<Networks>,
    last: Option<(u64, u64, u64)>,
}

impl std::fmt::Debug for HostTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTelemetry")
            .field("last", &self.last)
            .finish()
    }
}

impl Default for HostTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl HostTelemetry {
    /// A sampler; the first `sample` only primes the counters and returns `None`.
    pub fn new() -> HostTelemetry {
        HostTelemetry {
            // A platform sysinfo cannot read gives no samples, not a crash.
            system: System::new().ok(),
            networks: Networks::new_with_refreshed_list().ok(),
            last: None,
        }
    }

    /// Reads the host at `now_ms`. `None` on the first call, when time did not advance,
    /// or when any reading is implausible (NaN, zero total memory).
    pub fn sample(&mut self, now_ms: u64) -> Option<HostSample> {
        let (system, networks) = (self.system.as_mut()?, self.networks.as_mut()?);
        system.refresh_cpu_usage();
        system.refresh_memory();
        networks.refresh(true);
        let (mut rx, mut tx) = (0u64, 0u64);
        for (_, data) in networks.iter() {
            rx = rx.saturating_add(data.total_received());
            tx = tx.saturating_add(data.total_transmitted());
        }
        let prev = self.last.replace((now_ms, rx, tx));
        let (t0, rx0, tx0) = prev?;
        if now_ms <= t0 {
            return None;
        }
        let dt = (now_ms - t0) as f64 / 1000.0;
        let cpu = f64::from(system.global_cpu_usage()) / 100.0;
        let total = system.total_memory();
        if total == 0 || !cpu.is_finite() {
            return None;
        }
        let available = system.available_memory().min(total);
        let s = HostSample {
            cpu: cpu.clamp(0.0, 1.0),
            memory: 1.0 - available as f64 / total as f64,
            rx_bytes_per_s: rx.saturating_sub(rx0) as f64 / dt,
            tx_bytes_per_s: tx.saturating_sub(tx0) as f64 / dt,
        };
        let finite =
            s.memory.is_finite() && s.rx_bytes_per_s.is_finite() && s.tx_bytes_per_s.is_finite();
        finite.then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_primes_then_readings_are_in_range() {
        let mut t = HostTelemetry::new();
        assert_eq!(t.sample(1_000), None);
        assert_eq!(t.sample(1_000), None, "time did not advance");
        let s = t.sample(1_250).expect("a reading on Linux");
        assert!((0.0..=1.0).contains(&s.cpu));
        assert!((0.0..=1.0).contains(&s.memory));
        assert!(s.rx_bytes_per_s >= 0.0 && s.tx_bytes_per_s >= 0.0);
        let o = s.observation();
        assert!(o.iter().all(|x| x.is_finite() && *x >= 0.0));
        assert!((o[0] - 10.0 * (0.7 * s.cpu + 0.3 * s.memory)).abs() < 1e-12);
    }

    #[test]
    fn the_mapping_is_the_documented_one() {
        let s = HostSample {
            cpu: 0.5,
            memory: 0.25,
            rx_bytes_per_s: 1024.0 * 1024.0,
            tx_bytes_per_s: 0.0,
        };
        assert!((s.load() - 0.425).abs() < 1e-12);
        let o = s.observation();
        assert!((o[0] - 4.25).abs() < 1e-12);
        assert!((o[1] - 2f64.ln()).abs() < 1e-12);
    }
}
