//! L1: the active-inference agent.

use shivya_core::flux::{FluxConfig, GaussianModel, GibbsFluxAgent, InversionPath, SubstrateError};

fn agent2() -> GibbsFluxAgent {
    GibbsFluxAgent::new(
        GaussianModel::isotropic(2, 2, 4.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap()
}

/// A model with a mixing map and a correlated prior, so the descent is not trivial.
fn mixed_agent(cfg: FluxConfig) -> GibbsFluxAgent {
    let model = GaussianModel {
        prior_mean: vec![0.5, -1.0],
        prior_cov: vec![2.0, 0.6, 0.6, 1.0],
        map: vec![1.0, 0.5, -0.3, 2.0, 0.7, 0.7],
        sensory_cov: vec![0.5, 0.1, 0.0, 0.1, 0.4, 0.0, 0.0, 0.0, 0.9],
    };
    GibbsFluxAgent::new(model, cfg).unwrap()
}

fn snapshot(a: &GibbsFluxAgent) -> Vec<u64> {
    a.mean()
        .iter()
        .chain(a.covariance())
        .chain(a.observation())
        .chain(a.action())
        .chain(a.prior_mean())
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn free_energy_falls_under_smooth_observations() {
    let mut a = agent2();
    let mut trace = Vec::new();
    for t in 0..40 {
        let x = t as f64 * 0.1;
        let obs = [1.0 + 0.01 * x.sin(), -0.5 + 0.01 * x.cos()];
        let r = a.update(&obs).unwrap();
        assert!(
            r.free_energy <= r.free_energy_before + 1e-12,
            "step {t}: {r:?}"
        );
        trace.push(r.free_energy);
        a.absorb(0.001).unwrap();
    }
    let lead: f64 = trace[..5].iter().sum::<f64>() / 5.0;
    let trail: f64 = trace[35..].iter().sum::<f64>() / 5.0;
    assert!(trail < lead, "lead {lead} trail {trail}");
}

#[test]
fn update_reaches_tolerance_within_ten_iterations() {
    let cases: [&[f64]; 4] = [
        &[1.0, 2.0, 3.0],
        &[-4.0, 0.0, 10.0],
        &[0.0, 0.0, 0.0],
        &[100.0, -50.0, 3.0],
    ];
    // The preconditioned step contracts the error by (1 − η) per iteration on this
    // linear-Gaussian model, so η ≥ 0.9 reaches 1e-4 from a 1e5-sized gradient in ≤ 10.
    for lr in [1.0, 0.9] {
        for obs in cases {
            let mut a = mixed_agent(FluxConfig {
                learning_rate: lr,
                ..FluxConfig::default()
            });
            let r = a.update(obs).unwrap();
            assert!(
                r.converged && r.gradient_norm <= 1e-4,
                "lr {lr} obs {obs:?}: {r:?}"
            );
            assert!(r.iterations <= 10, "lr {lr} obs {obs:?}: {r:?}");
            assert!(r.free_energy < r.free_energy_before || r.iterations == 0);
        }
    }
}

#[test]
fn singular_prior_takes_the_ridge_path() {
    let model = GaussianModel {
        prior_mean: vec![0.0, 0.0],
        prior_cov: vec![1.0, 1.0, 1.0, 1.0],
        map: vec![1.0, 0.0, 0.0, 1.0],
        sensory_cov: vec![1.0, 0.0, 0.0, 1.0],
    };
    let mut a = GibbsFluxAgent::new(model, FluxConfig::default()).unwrap();
    assert_eq!(a.prior_inversion(), InversionPath::Ridge);
    let r = a.update(&[1.0, -1.0]).unwrap();
    assert!(r.free_energy.is_finite());
    assert!(a.mean().iter().all(|x| x.is_finite()));
    // A zero sensory covariance is singular as well, and also survives.
    let zero = GaussianModel {
        sensory_cov: vec![0.0; 4],
        ..GaussianModel::isotropic(2, 2, 1.0, 1.0)
    };
    let mut b = GibbsFluxAgent::new(zero, FluxConfig::default()).unwrap();
    assert_eq!(b.sensory_inversion(), InversionPath::Ridge);
    assert!(b.update(&[0.5, 0.5]).unwrap().free_energy.is_finite());
}

#[test]
fn negative_definite_covariance_falls_back_to_identity() {
    let model = GaussianModel {
        prior_cov: vec![-1.0, 0.0, 0.0, -1.0],
        ..GaussianModel::isotropic(2, 2, 1.0, 1.0)
    };
    let mut a = GibbsFluxAgent::new(model, FluxConfig::default()).unwrap();
    assert_eq!(a.prior_inversion(), InversionPath::Identity);
    assert!(a.update(&[1.0, 1.0]).unwrap().free_energy.is_finite());
}

#[test]
fn nan_observation_is_rejected_and_changes_nothing() {
    let mut a = agent2();
    a.update(&[0.3, 0.7]).unwrap();
    let before = snapshot(&a);
    for bad in [
        [f64::NAN, 0.0],
        [0.0, f64::INFINITY],
        [f64::NEG_INFINITY, 1.0],
    ] {
        let err = a.update(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                SubstrateError::NonFinite {
                    what: "observation",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(snapshot(&a), before);
    }
    assert!(matches!(
        a.update(&[1.0]),
        Err(SubstrateError::Dimension {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert_eq!(snapshot(&a), before);
    assert!(a.set_mean(&[f64::NAN, 0.0]).is_err());
    assert_eq!(snapshot(&a), before);
}

#[test]
fn bad_models_and_configs_are_rejected() {
    let m = GaussianModel::isotropic(2, 2, 1.0, 1.0);
    let asym = GaussianModel {
        prior_cov: vec![1.0, 0.5, 0.4, 1.0],
        ..m.clone()
    };
    assert!(matches!(
        GibbsFluxAgent::new(asym, FluxConfig::default()),
        Err(SubstrateError::NotSymmetric { .. })
    ));
    let nan = GaussianModel {
        map: vec![1.0, f64::NAN, 0.0, 1.0],
        ..m.clone()
    };
    assert!(matches!(
        GibbsFluxAgent::new(nan, FluxConfig::default()),
        Err(SubstrateError::NonFinite { .. })
    ));
    for cfg in [
        FluxConfig {
            learning_rate: 0.0,
            ..FluxConfig::default()
        },
        FluxConfig {
            learning_rate: 1.5,
            ..FluxConfig::default()
        },
        FluxConfig {
            tolerance: f64::NAN,
            ..FluxConfig::default()
        },
        FluxConfig {
            ridge: -1.0,
            ..FluxConfig::default()
        },
    ] {
        assert!(matches!(
            GibbsFluxAgent::new(m.clone(), cfg),
            Err(SubstrateError::Config { .. })
        ));
    }
    let mut a = agent2();
    assert!(a.absorb(f64::NAN).is_err());
    assert!(a.absorb(-1.0).is_err());
}

#[test]
fn growing_a_latent_dimension_explains_a_new_signal() {
    // Two latent coordinates see observations 0 and 1; observation 2 carries a signal
    // the model cannot explain until a coordinate reads it.
    let mut a = GibbsFluxAgent::new(
        GaussianModel::isotropic(2, 3, 4.0, 0.5),
        FluxConfig::default(),
    )
    .unwrap();
    let obs = [0.5, -0.5, 4.0];
    let before = a.update(&obs).unwrap().free_energy;
    a.grow_latent(&[0.0, 0.0, 1.0], 25.0, 3).unwrap();
    assert_eq!(a.dim(), 3);
    let after = a.update(&obs).unwrap().free_energy;
    assert!(after < before - 1.0, "before {before} after {after}");
    assert!(matches!(
        a.grow_latent(&[0.0, 0.0, 1.0], 1.0, 3),
        Err(SubstrateError::DimensionLimit { dim: 3, max: 3 })
    ));
}

#[test]
fn action_points_from_the_sensed_input_toward_the_prediction() {
    let mut a = agent2();
    a.update(&[2.0, -2.0]).unwrap();
    let mut pred = [0.0; 2];
    a.predict(&mut pred).unwrap();
    let k = a.config().action_gain;
    for (i, p) in pred.iter().enumerate() {
        assert_eq!(a.action()[i], k * (p - a.observation()[i]));
    }
    // The prior pulls the prediction toward zero, so the action opposes the signal.
    assert!(a.action()[0] < 0.0 && a.action()[1] > 0.0);
}
