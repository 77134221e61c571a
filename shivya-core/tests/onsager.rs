//! L3: coupling, dividends, and the full-stack ensemble step.

use shivya_core::onsager::*;
use shivya_core::rng::Rng;

const SEVEN: [(u32, u32, f64); 10] = [
    (0, 1, 1.0),
    (1, 2, 0.6),
    (0, 2, 0.9),
    (2, 3, 1.0),
    (3, 4, 0.8),
    (4, 5, 0.5),
    (5, 6, 1.0),
    (6, 0, 0.7),
    (3, 5, 0.4),
    (1, 6, 0.3),
];

fn seven(cfg: EnsembleConfig) -> OnsagerCollectiveEnsemble {
    OnsagerCollectiveEnsemble::new(Coupling::from_edges(7, &SEVEN).unwrap(), cfg).unwrap()
}

/// A stable stream: each agent sees its own fixed target plus small seeded noise.
fn stable_obs(rng: &mut Rng, slots: usize) -> Vec<f64> {
    (0..slots)
        .flat_map(|i| [1.0 + 0.2 * i as f64, -0.5 + 0.1 * i as f64])
        .map(|x| x + 0.05 * rng.normal())
        .collect()
}

#[test]
fn coupling_must_be_symmetric_non_negative_and_loop_free() {
    let ok = [0.0, 1.0, 1.0, 0.0];
    assert_eq!(
        Coupling::from_dense(2, &ok).unwrap().edges(),
        &[(0, 1, 1.0)]
    );
    assert!(matches!(
        Coupling::from_dense(2, &[0.0, 1.0, 0.5, 0.0]),
        Err(OnsagerError::Asymmetric { i: 0, j: 1, .. })
    ));
    assert!(matches!(
        Coupling::from_dense(2, &[0.0, -1.0, -1.0, 0.0]),
        Err(OnsagerError::BadCoupling { .. })
    ));
    assert!(matches!(
        Coupling::from_dense(2, &[1.0, 0.0, 0.0, 0.0]),
        Err(OnsagerError::BadCoupling { .. })
    ));
    assert!(matches!(
        Coupling::from_dense(2, &[0.0, f64::NAN, f64::NAN, 0.0]),
        Err(OnsagerError::BadCoupling { .. })
    ));
    assert!(matches!(
        Coupling::from_dense(3, &ok),
        Err(OnsagerError::Length { .. })
    ));
    assert!(Coupling::from_edges(3, &[(0, 3, 1.0)]).is_err());
}

#[test]
fn three_player_dividends_match_hand_computation() {
    // Masks: bit0 = player 1, bit1 = player 2, bit2 = player 3.
    let mut v = [0.0, 1.0, 2.0, 5.0, 0.0, 1.0, 3.0, 10.0];
    assert!(dividends_in_place(&mut v));
    // d1=1, d2=2, d12=5−1−2=2, d3=0, d13=1−1−0=0, d23=3−2−0=1,
    // d123 = 10 − 5 − 1 − 3 + 1 + 2 + 0 = 4.
    assert_eq!(v, [0.0, 1.0, 2.0, 2.0, 0.0, 0.0, 1.0, 4.0]);
    assert_eq!(v.iter().sum::<f64>(), 10.0, "dividends sum to v(N)");
    // Shapley values: φ1 = 1 + 2/2 + 0/2 + 4/3, etc.; they sum to v(N).
    let phi: Vec<f64> = (0..3).map(|p| shapley_from_dividends(&v, p)).collect();
    assert!((phi[0] - (1.0 + 1.0 + 4.0 / 3.0)).abs() < 1e-12);
    assert!((phi[1] - (2.0 + 1.0 + 0.5 + 4.0 / 3.0)).abs() < 1e-12);
    assert!((phi.iter().sum::<f64>() - 10.0).abs() < 1e-12);
    assert!(
        !dividends_in_place(&mut [0.0; 3]),
        "length must be a power of two"
    );
}

#[test]
fn collective_free_energy_trends_down_on_a_stable_stream() {
    let mut e = seven(EnsembleConfig::default());
    let mut rng = Rng::new(11);
    let mut f = Vec::new();
    for _ in 0..80 {
        let obs = stable_obs(&mut rng, e.slots());
        let r = e.step(&obs).unwrap();
        assert!(r.f_collective.is_finite());
        assert!(r.residual < 1e-8, "{r:?}");
        f.push(r.f_collective);
    }
    let lead = f[..10].iter().sum::<f64>() / 10.0;
    let trail = f[70..].iter().sum::<f64>() / 10.0;
    assert!(trail < lead, "leading {lead}, trailing {trail}");
}

#[test]
fn steps_are_bit_reproducible() {
    let run = || {
        let mut e = seven(EnsembleConfig::default());
        let mut rng = Rng::new(5);
        let mut bits = Vec::new();
        for _ in 0..30 {
            let r = e.step(&stable_obs(&mut rng, 7)).unwrap();
            bits.push(r.f_collective.to_bits());
            bits.extend(e.settled_flow().iter().map(|x| x.to_bits()));
        }
        bits
    };
    assert_eq!(run(), run());
}

#[test]
fn a_bad_observation_is_rejected_before_anything_changes() {
    let mut e = seven(EnsembleConfig::default());
    let mut rng = Rng::new(3);
    e.step(&stable_obs(&mut rng, 7)).unwrap();
    let means = |e: &OnsagerCollectiveEnsemble| {
        (0..7)
            .flat_map(|i| e.agent(i).unwrap().mean().to_vec())
            .map(f64::to_bits)
            .collect::<Vec<_>>()
    };
    let before = (means(&e), e.steps());
    let mut obs = stable_obs(&mut rng, 7);
    obs[9] = f64::NAN;
    assert!(matches!(
        e.step(&obs),
        Err(OnsagerError::NonFiniteObservation {
            agent: 4,
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        e.step(&obs[..5]),
        Err(OnsagerError::Length { .. })
    ));
    assert_eq!((means(&e), e.steps()), before);
    obs[9] = 0.0;
    assert!(e.step(&obs).is_ok(), "the ensemble keeps working");
}

#[test]
fn diffusion_pulls_disagreeing_beliefs_together() {
    // Two coupled agents, opposite observations, heavy diffusion: after stepping, their
    // belief gap is smaller than for uncoupled twins.
    let gap = |rate: f64| {
        let cfg = EnsembleConfig {
            agent: AgentConfig {
                diffusion_rate: rate,
                ..AgentConfig::default()
            },
            ..EnsembleConfig::default()
        };
        let mut e =
            OnsagerCollectiveEnsemble::new(Coupling::from_edges(2, &[(0, 1, 1.0)]).unwrap(), cfg)
                .unwrap();
        for _ in 0..20 {
            e.step(&[2.0, 0.0, -2.0, 0.0]).unwrap();
        }
        e.agent(0).unwrap().mean()[0] - e.agent(1).unwrap().mean()[0]
    };
    let (coupled, free) = (gap(0.4), gap(0.0));
    assert!(
        coupled > 0.0 && coupled < 0.8 * free,
        "coupled {coupled}, free {free}"
    );
}

#[test]
fn agreeing_coupled_neighbourhoods_earn_dividends() {
    let mut e = seven(EnsembleConfig::default());
    let same: Vec<f64> = (0..7).flat_map(|_| [1.0, 1.0]).collect();
    for _ in 0..10 {
        e.step(&same).unwrap();
    }
    let shares = e.dividend_shares();
    assert!(shares.iter().all(|&s| s > 0.0), "{shares:?}");
    // Pairwise game value is L_ij · exp(−d²/4T); with identical beliefs each share is at
    // least half the coupling to the strongest neighbour.
    assert!(shares[0] >= 0.5 * 1.0 - 1e-9, "{shares:?}");
}

#[test]
fn topology_adapts_through_the_pool_when_enabled() {
    use shivya_core::turing::TuringConfig;
    let cfg = EnsembleConfig {
        adapt_topology: true,
        pool_capacity: 9,
        turing: TuringConfig {
            split_threshold: 2.05,
            stress_gain: 0.5,
            ..TuringConfig::default()
        },
        ..EnsembleConfig::default()
    };
    let mut e = seven(cfg);
    let mut rng = Rng::new(9);
    let (mut splits, mut full) = (0, 0);
    for _ in 0..60 {
        let r = e.step(&stable_obs(&mut rng, e.slots())).unwrap();
        splits += r.splits;
        full += r.pool_full;
        assert!(r.active <= 9);
    }
    assert_eq!(splits, 2, "two spare slots, two splits");
    assert!(full > 0, "further splits are refused, not grown");
    assert_eq!(e.slots(), 9);
    assert!(
        e.complex().n_edges() > SEVEN.len(),
        "children are coupled in"
    );
}
