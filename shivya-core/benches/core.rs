//! Criterion benches for the math core: reconcile (curl projection) on the bowtie and on
//! random 2-complexes, and a full-stack ensemble step.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shivya_core::graph::Graph;
use shivya_core::hodge::SimplicialComplex;
use shivya_core::onsager::{Coupling, EnsembleConfig, OnsagerCollectiveEnsemble};
use shivya_core::rng::Rng;
use std::hint::black_box;

/// A ring lattice (each vertex joined to its next `k` neighbours) with 10% of edges
/// rewired at random, and every 3-clique filled: a 2-complex with many triangles and
/// some holes. About `k · n` edges.
fn lattice_complex(n: usize, k: usize, seed: u64) -> SimplicialComplex {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::BTreeSet::new();
    let mut edges = Vec::new();
    for u in 0..n {
        for d in 1..=k {
            let mut v = (u + d) % n;
            if rng.chance(0.1) {
                v = rng.below(n as u64) as usize;
            }
            let key = (u.min(v), u.max(v));
            if u != v && seen.insert(key) {
                edges.push((key.0 as u32, key.1 as u32, 1.0));
            }
        }
    }
    let g = Graph::new(n, &edges).unwrap();
    let pairs: Vec<_> = edges.iter().map(|&(u, v, _)| (u, v)).collect();
    SimplicialComplex::new(n, &pairs, &g.triangles()).unwrap()
}

fn reconcile(c: &mut Criterion) {
    let bowtie = SimplicialComplex::new(
        5,
        &[(0, 1), (1, 2), (0, 2), (0, 3), (3, 4), (0, 4)],
        &[(0, 1, 2), (0, 3, 4)],
    )
    .unwrap();
    let mut ws = bowtie.workspace();
    let x = [1.0, 2.0, -0.5, 0.25, 3.0, -1.0];
    let mut out = [0.0; 6];
    c.bench_function("reconcile/bowtie", |b| {
        b.iter(|| {
            bowtie
                .project_curl_free_into(black_box(&x), &mut ws, &mut out)
                .unwrap()
        })
    });

    let mut group = c.benchmark_group("reconcile/lattice");
    group.sample_size(10);
    for target_edges in [1_000usize, 10_000, 100_000] {
        let cx = lattice_complex(target_edges / 4, 4, 7);
        let mut ws = cx.workspace();
        let mut rng = Rng::new(1);
        let flow: Vec<f64> = (0..cx.n_edges())
            .map(|_| rng.range_f64(-1.0, 1.0))
            .collect();
        let mut out = vec![0.0; cx.n_edges()];
        let rep = cx.project_curl_free_into(&flow, &mut ws, &mut out).unwrap();
        eprintln!(
            "lattice E={} T={}: {} CG iterations, residual {:.2e}",
            cx.n_edges(),
            cx.n_triangles(),
            rep.iterations,
            rep.residual
        );
        group.throughput(Throughput::Elements(cx.n_edges() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(cx.n_edges()), &flow, |b, f| {
            b.iter(|| cx.project_curl_free_into(f, &mut ws, &mut out).unwrap())
        });
    }
    group.finish();
}

fn ensemble(c: &mut Criterion) {
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
    let mut e = OnsagerCollectiveEnsemble::new(
        Coupling::from_edges(7, &edges).unwrap(),
        EnsembleConfig::default(),
    )
    .unwrap();
    let obs: Vec<f64> = (0..14).map(|i| (i as f64 * 0.37).sin()).collect();
    c.bench_function("ensemble/step/7x2d", |b| {
        b.iter(|| e.step(black_box(&obs)).unwrap())
    });
}

criterion_group!(benches, reconcile, ensemble);
criterion_main!(benches);
