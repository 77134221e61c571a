//! A 7-agent ensemble run through the whole L0–L4 stack, printing per step the collective
//! free energy, the dividends, and the reconciler's residual and CG iterations.
//!
//! `cargo run --release -p shivya-core --example ensemble [-- STEPS]`

use shivya_core::onsager::{Coupling, EnsembleConfig, OnsagerCollectiveEnsemble};
use shivya_core::rng::Rng;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let edges = [
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
    let coupling = match Coupling::from_edges(7, &edges) {
        Ok(c) => c,
        Err(e) => return eprintln!("bad coupling: {e}"),
    };
    let mut ensemble = match OnsagerCollectiveEnsemble::new(coupling, EnsembleConfig::default()) {
        Ok(e) => e,
        Err(e) => return eprintln!("cannot build the ensemble: {e}"),
    };
    println!(
        "7 agents, {} couplings, {} filled triangles; 2-D beliefs",
        ensemble.complex().n_edges(),
        ensemble.complex().n_triangles()
    );
    println!(
        "{:>4} {:>12} {:>10} {:>10} {:>10} {:>4}",
        "step", "F_collective", "sum F", "dividends", "residual", "cg"
    );
    let mut rng = Rng::new(2026);
    for t in 0..steps {
        // Each agent watches a load signal of its own, steady with a little noise.
        let obs: Vec<f64> = (0..ensemble.slots())
            .flat_map(|i| [1.0 + 0.2 * i as f64, -0.5 + 0.1 * i as f64])
            .map(|x| x + 0.05 * rng.normal())
            .collect();
        match ensemble.step(&obs) {
            Ok(r) => println!(
                "{:>4} {:>12.4} {:>10.4} {:>10.4} {:>10.2e} {:>4}",
                t, r.f_collective, r.sum_free_energy, r.sum_dividends, r.residual, r.cg_iterations
            ),
            Err(e) => return eprintln!("step {t} failed: {e}"),
        }
    }
    println!(
        "settled migration flow per coupling: {:?}",
        ensemble
            .settled_flow()
            .iter()
            .map(|x| (x * 1e4).round() / 1e4)
            .collect::<Vec<_>>()
    );
}
