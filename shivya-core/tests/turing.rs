//! L4: CFL clamp, pattern formation, pool and cluster floor.

use proptest::prelude::*;
use shivya_core::graph::Graph;
use shivya_core::rng::Rng;
use shivya_core::turing::*;

fn ring(n: usize) -> Graph {
    let edges: Vec<_> = (0..n as u32)
        .map(|i| (i, (i + 1) % n as u32, 1.0))
        .collect();
    Graph::new(n, &edges).unwrap()
}

fn coefficient_of_variation(x: &[f64]) -> f64 {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let v = x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / x.len() as f64;
    v.sqrt() / m.abs()
}

proptest! {
    #[test]
    fn dt_never_exceeds_the_cfl_bound(seed in any::<u64>(), n in 3usize..30, dt in 0.001f64..5.0, d_h in 0.1f64..20.0) {
        let mut rng = Rng::new(seed);
        let mut edges = Vec::new();
        for u in 0..n as u32 {
            for v in u + 1..n as u32 {
                if rng.chance(0.3) {
                    edges.push((u, v, rng.range_f64(0.1, 3.0)));
                }
            }
        }
        let g = Graph::new(n, &edges).unwrap();
        let cfg = TuringConfig { dt, d_h, ..TuringConfig::default() };
        let mut t = TuringSubstrate::new(cfg, n, n).unwrap();
        let zeros = vec![0.0; n];
        for _ in 0..5 {
            let r = t.step(&g, &zeros, &zeros).unwrap();
            // Weighted degree, as documented.
            let deg_max = (0..n).map(|i| g.neighbours(i).1.iter().sum::<f64>()).fold(0.0, f64::max);
            let bound = if deg_max > 0.0 { 0.45 / (cfg.d_a.max(d_h) * deg_max) } else { f64::INFINITY };
            prop_assert!(r.dt <= bound && r.dt <= dt && r.dt > 0.0);
            prop_assert!(t.activator().iter().all(|a| a.is_finite() && *a >= 0.0));
        }
    }
}

#[test]
fn a_perturbed_uniform_state_forms_a_turing_pattern() {
    let g = ring(40);
    let zeros = vec![0.0; 40];
    // Unstable regime: D_h/D_a = 40 with μ_h > μ_a.
    let unstable = TuringConfig {
        split_threshold: 1e9,
        cull_activation: -1.0,
        ..TuringConfig::default()
    };
    // Control: equal diffusion, no Turing instability (the same reaction terms).
    let stable = TuringConfig {
        d_h: 0.05,
        ..unstable
    };
    let run = |cfg: TuringConfig| {
        let mut t = TuringSubstrate::new(cfg, 40, 40).unwrap();
        t.perturb(&mut Rng::new(1), 0.01);
        for _ in 0..3000 {
            t.step(&g, &zeros, &zeros).unwrap();
        }
        coefficient_of_variation(t.activator())
    };
    let (cv_pattern, cv_control) = (run(unstable), run(stable));
    assert!(cv_pattern > 0.3, "pattern CV {cv_pattern}");
    assert!(cv_control < 1e-3, "control CV {cv_control}");
}

#[test]
fn the_pool_never_resizes_and_a_full_pool_is_reported() {
    let g = ring(6);
    let cfg = TuringConfig {
        split_threshold: 0.5,
        max_splits_per_step: 3,
        cull_activation: -1.0,
        ..TuringConfig::default()
    };
    let mut t = TuringSubstrate::new(cfg, 6, 3).unwrap();
    let cap = t.buffer_capacity();
    let zeros = vec![0.0; 6];
    let (mut splits, mut full) = (0, 0);
    for _ in 0..50 {
        let r = t.step(&g, &zeros, &zeros).unwrap();
        splits += r.splits;
        full += r.pool_full;
        assert_eq!(t.buffer_capacity(), cap);
        assert!(t.pool().active_count() <= 6);
    }
    assert_eq!(splits, 3);
    assert!(full > 0);
    assert_eq!(t.pool().capacity(), 6);
}

#[test]
fn cull_never_goes_below_the_floor() {
    let g = ring(10);
    let cfg = TuringConfig {
        cull_activation: 1e9,
        cull_utility: 1e9,
        min_cluster: 4,
        split_threshold: 1e9,
        ..TuringConfig::default()
    };
    let mut t = TuringSubstrate::new(cfg, 10, 10).unwrap();
    let zeros = vec![0.0; 10];
    let mut culled = 0;
    for _ in 0..20 {
        culled += t.step(&g, &zeros, &zeros).unwrap().culls;
        assert!(t.pool().active_count() >= 4);
    }
    assert_eq!(culled, 6);
    assert_eq!(t.pool().active_count(), 4);
    // High utility protects a node from cull even at low activation.
    let mut keep = TuringSubstrate::new(
        TuringConfig {
            cull_utility: 0.5,
            ..cfg
        },
        10,
        10,
    )
    .unwrap();
    keep.step(&g, &zeros, &[1.0; 10]).unwrap();
    assert_eq!(keep.pool().active_count(), 10);
}

#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let g = ring(5);
    let mut t = TuringSubstrate::new(TuringConfig::default(), 5, 5).unwrap();
    let before: Vec<u64> = t.activator().iter().map(|x| x.to_bits()).collect();
    assert!(matches!(
        t.step(&g, &[0.0, f64::NAN, 0.0, 0.0, 0.0], &[0.0; 5]),
        Err(TuringError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        t.step(&g, &[0.0; 4], &[0.0; 5]),
        Err(TuringError::Length { .. })
    ));
    assert!(matches!(
        t.step(&g, &[0.0; 5], &[f64::INFINITY; 5]),
        Err(TuringError::NonFinite { .. })
    ));
    let after: Vec<u64> = t.activator().iter().map(|x| x.to_bits()).collect();
    assert_eq!(before, after);
    for bad in [
        TuringConfig {
            dt: 0.0,
            ..TuringConfig::default()
        },
        TuringConfig {
            d_h: -1.0,
            ..TuringConfig::default()
        },
        TuringConfig {
            rho: f64::NAN,
            ..TuringConfig::default()
        },
        TuringConfig {
            min_cluster: 0,
            ..TuringConfig::default()
        },
    ] {
        assert!(TuringSubstrate::new(bad, 5, 5).is_err());
    }
    assert!(TuringSubstrate::new(TuringConfig::default(), 3, 5).is_err());
}
