use super::*;

fn ring(n: u32) -> Vec<(u32, u32)> {
    (0..n)
        .map(|u| (u.min((u + 1) % n), u.max((u + 1) % n)))
        .collect()
}

fn balancer(n: u32, layers: Layers) -> Balancer {
    let cfg = BalancerConfig {
        layers,
        ..BalancerConfig::default()
    };
    let edges = if n > 2 { ring(n) } else { vec![] };
    Balancer::new(cfg, n, &edges, 7, 0).unwrap()
}

/// Share of `rounds` picks that go to each backend, finishing each request at once with
/// the backend's latency.
fn shares(b: &mut Balancer, latency: &[f64], rounds: usize, t0: u64) -> Vec<f64> {
    let mut count = vec![0usize; b.len()];
    for k in 0..rounds {
        let now = t0 + k as u64;
        let v = b.pick(now).unwrap();
        count[v as usize] += 1;
        b.started(v, now).unwrap();
        b.finished(v, latency[v as usize], Outcome::Ok, now)
            .unwrap();
        if k % 50 == 0 {
            let merged = vec![0.0; b.len()];
            b.refresh(&merged, 1, false, now).unwrap();
        }
    }
    count.iter().map(|&c| c as f64 / rounds as f64).collect()
}

#[test]
fn a_slow_backend_gets_a_small_share_and_a_recovered_one_gets_it_back() {
    let mut b = balancer(3, Layers::default());
    let s = shares(&mut b, &[10.0, 10.0, 100.0], 3_000, 0);
    assert!(s[2] < 0.1, "{s:?}");
    assert!((s[0] - s[1]).abs() < 0.1, "{s:?}");
    // It recovers: the uncertainty bonus and the weight floor bring it back.
    let s = shares(&mut b, &[10.0, 10.0, 10.0], 20_000, 3_000);
    let late = shares(&mut b, &[10.0, 10.0, 10.0], 3_000, 23_000);
    assert!(late[2] > 0.25, "{s:?} then {late:?}");
}

#[test]
fn the_others_load_from_the_records_steers_picks_only_when_shared() {
    for shared in [true, false] {
        let mut b = balancer(
            4,
            Layers {
                shared,
                ..Layers::default()
            },
        );
        // Every other balancer has 30 requests at backend 0.
        b.refresh(&[30.0, 0.0, 0.0, 0.0], 1, true, 0).unwrap();
        let mut to0 = 0;
        for t in 0..1_000 {
            if b.pick(t).unwrap() == 0 {
                to0 += 1;
            }
        }
        if shared {
            assert!(to0 < 20, "{to0} of 1000 picks to the loaded backend");
        } else {
            assert!(to0 > 200, "a local policy cannot know: {to0}");
        }
    }
}

#[test]
fn local_requests_in_flight_spread_picks_even_without_any_answer() {
    let mut b = balancer(4, Layers::default());
    let mut count = [0u32; 4];
    for t in 0..400 {
        let v = b.pick(t).unwrap();
        b.started(v, t).unwrap();
        count[v as usize] += 1;
    }
    // Two choices by requests in flight: never more than a couple apart.
    let (lo, hi) = (count.iter().min().unwrap(), count.iter().max().unwrap());
    assert!(hi - lo <= 3, "{count:?}");
    assert_eq!(b.in_flight().iter().sum::<u32>(), 400);
}

#[test]
fn what_is_published_is_the_time_average_of_requests_in_flight() {
    let mut b = balancer(2, Layers::default());
    b.publish(0);
    b.started(0, 0).unwrap();
    b.started(0, 50).unwrap();
    // 1 in flight for 50 ms, 2 for 50 ms: 1.5 on average.
    assert_eq!(b.publish(100), &[1.5, 0.0]);
    // Ours is subtracted from the merged sum: 1.5 of 4.5 is ours, 3 are the others'
    // (as reported without L1; with it, predicted between that and the long-run mean).
    let mut raw = balancer(
        2,
        Layers {
            filter: false,
            ..Layers::default()
        },
    );
    for b in [&mut b, &mut raw] {
        b.publish(100);
    }
    raw.started(0, 100).unwrap();
    raw.started(0, 100).unwrap();
    assert_eq!(raw.publish(200), &[2.0, 0.0]);
    raw.refresh(&[5.0, 0.0], 1, false, 200).unwrap();
    let (_, others) = raw.estimate(0).unwrap();
    assert!((others - 3.0).abs() < 1e-9, "{others}");
    b.refresh(&[5.0, 0.0], 1, false, 200).unwrap();
    let (_, predicted) = b.estimate(0).unwrap();
    assert!(predicted > 0.0 && predicted < 3.0, "{predicted}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut b = balancer(3, Layers::default());
    b.started(1, 0).unwrap();
    let before = b.in_flight().to_vec();
    assert!(matches!(
        b.started(3, 1),
        Err(BalancerError::UnknownBackend { backend: 3, n: 3 })
    ));
    for bad in [f64::NAN, f64::INFINITY, -1.0] {
        assert!(b.finished(1, bad, Outcome::Ok, 1).is_err());
        assert!(b.set_base_weight(0, bad).is_err());
        assert!(b.refresh(&[0.0, bad, 0.0], 1, true, 1).is_err());
    }
    assert!(b.refresh(&[0.0; 2], 1, true, 1).is_err());
    assert!(b.weights(&mut [0.0; 4]).is_err());
    assert_eq!(b.in_flight(), &before[..]);
    // A finish without a start is counted, not an underflow.
    b.finished(2, 5.0, Outcome::Ok, 2).unwrap();
    assert_eq!(b.counters().unmatched_finishes, 1);
    assert_eq!(b.in_flight()[2], 0);
    // No backends: nothing to pick, no panic.
    let mut empty = Balancer::new(BalancerConfig::default(), 0, &[], 1, 0).unwrap();
    assert_eq!(empty.pick(0), None);
}

#[test]
fn an_operator_law_is_checked_when_configured_and_faults_are_counted() {
    let with = |law: &str| BalancerConfig {
        law: Some(law.to_string()),
        ..BalancerConfig::default()
    };
    let e = with("weight / latency").validate().unwrap_err();
    assert!(e.to_string().contains("unknown name 'latency'"), "{e}");
    let nested = format!("{}q{}", "(".repeat(40), ")".repeat(40));
    assert!(with(&nested).validate().is_err());
    // Seventeen registers' worth: a balanced tree of depth 17 is refused by the compiler.
    let mut deep = "q".to_string();
    for _ in 0..17 {
        deep = format!("({deep} + {deep})");
    }
    assert!(with(&deep).validate().is_err());
    // A law that divides by zero for an idle backend: weight 0 there, counted.
    let mut b = Balancer::new(with("weight / q"), 2, &[], 1, 0).unwrap();
    b.refresh(&[0.0, 3.0], 1, true, 0).unwrap();
    assert!(b.counters().law_faults >= 1);
    let mut w = [0.0; 2];
    b.weights(&mut w).unwrap();
    assert!(w[0] < w[1], "{w:?}");
    // The law decides: the inverse law sends more weight to the loaded backend.
    let mut inv = Balancer::new(with("weight * (1 + q)"), 2, &[], 1, 0).unwrap();
    inv.refresh(&[0.0, 3.0], 1, true, 0).unwrap();
    inv.weights(&mut w).unwrap();
    assert!(w[1] > w[0], "{w:?}");
}

#[test]
fn damping_moves_weights_part_of_the_way() {
    // A law that follows the queues, so that the records move the target.
    let with = |damping: bool| {
        let cfg = BalancerConfig {
            law: Some("1 / (1 + q)".into()),
            layers: Layers {
                damping,
                ..Layers::default()
            },
            ..BalancerConfig::default()
        };
        Balancer::new(cfg, 2, &[], 7, 0).unwrap()
    };
    let (mut damped, mut jumpy) = (with(true), with(false));
    let (mut wd, mut wj) = ([0.0; 2], [0.0; 2]);
    for b in [&mut damped, &mut jumpy] {
        b.refresh(&[40.0, 0.0], 1, true, 0).unwrap();
    }
    damped.weights(&mut wd).unwrap();
    jumpy.weights(&mut wj).unwrap();
    assert!(wd[0] > wj[0], "damped {wd:?} jumpy {wj:?}");
    for t in 1..30 {
        damped.refresh(&[40.0, 0.0], 1, true, t).unwrap();
        jumpy.refresh(&[40.0, 0.0], 1, true, t).unwrap();
    }
    damped.weights(&mut wd).unwrap();
    jumpy.weights(&mut wj).unwrap();
    assert!((wd[0] - wj[0]).abs() < 1e-3, "damped {wd:?} jumpy {wj:?}");
}

#[test]
fn capacity_signals_split_the_saturated_and_cull_the_idle_above_the_floor() {
    let mut b = balancer(8, Layers::default());
    let mut load = [2.0; 8];
    load[3] = 40.0;
    load[6] = 0.0;
    load[7] = 0.0;
    b.refresh(&load, 1, true, 0).unwrap();
    let s = b.signals().to_vec();
    assert!(s.contains(&CapacitySignal::Split { backend: 3 }), "{s:?}");
    assert!(s.contains(&CapacitySignal::Cull { backend: 6 }), "{s:?}");
    assert!(!s
        .iter()
        .any(|x| matches!(x, CapacitySignal::Split { backend } if *backend != 3)));
    // Uniform load: nothing to say. Idle mesh: nothing to say.
    b.refresh(&[5.0; 8], 1, true, 1).unwrap();
    assert!(b.signals().is_empty(), "{:?}", b.signals());
    b.refresh(&[0.0; 8], 1, true, 2).unwrap();
    assert!(b.signals().is_empty());
    // Never below the floor: with almost everything idle, at most n − floor culls.
    let mut idle = [0.0; 8];
    idle[0] = 50.0;
    b.refresh(&idle, 1, true, 3).unwrap();
    let culls = b
        .signals()
        .iter()
        .filter(|x| matches!(x, CapacitySignal::Cull { .. }))
        .count();
    assert!(culls <= 8 - 2, "{:?}", b.signals());
    assert!(culls > 0);
}

#[test]
fn capacity_signals_depend_on_the_records_alone() {
    let mut load = [1.0; 8];
    load[2] = 30.0;
    load[5] = 0.0;
    let mut fresh = balancer(8, Layers::default());
    let mut used = balancer(8, Layers::default());
    for t in 0..50 {
        let v = used.pick(t).unwrap();
        used.started(v, t).unwrap();
        used.refresh(&[t as f64 * 0.1 + 1.0 / 3.0; 8], 1, true, t)
            .unwrap();
    }
    fresh.refresh(&load, 1, true, 100).unwrap();
    used.refresh(&load, 1, true, 100).unwrap();
    assert!(!fresh.signals().is_empty());
    assert_eq!(fresh.signals(), used.signals());
}

#[test]
fn picks_are_reproducible_from_the_seed() {
    let run = || {
        let mut b = balancer(5, Layers::default());
        shares(&mut b, &[3.0, 1.0 / 3.0, 7.0, 0.1, 2.0], 500, 0)
    };
    assert_eq!(run(), run());
}
