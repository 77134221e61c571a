//! Criterion benches of the math core: the curl projection (reconcile) on the bowtie and
//! on random 2-complexes of 10³…10⁶ edges, and the full L0–L4 ensemble step for 7, 64 and
//! 1024 agents.
//!
//! Each complex is measured with the default solver (a sparse Cholesky factor made on the
//! first call) and with Jacobi CG. The setup prints the CG iterations, the non-zeros one
//! iteration touches, the measured streaming bandwidth of this machine and the bound it
//! implies: a sparse mat-vec must read every stored value (8 B) and column index (4 B)
//! and write its output, so `bound = iterations × bytes of the two products / bandwidth`;
//! for the direct solve, two sweeps over the factor.
//! The large sizes (≥ 10⁵ edges) are built only under `cargo bench`, not when
//! `cargo test --all-targets` runs each bench once.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shivya_bench::complexes::{build, random_flow, Family};
use shivya_core::hodge::{SimplicialComplex, Solver};
use shivya_core::onsager::{Coupling, EnsembleConfig, OnsagerCollectiveEnsemble};
use std::hint::black_box;
use std::time::Instant;

fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Best of three STREAM-style triads `a = b + s·c` over 3 × 128 MB, in bytes/s
/// (24 bytes moved per element; write-allocate traffic not counted).
fn triad_bandwidth() -> f64 {
    let n = 16 << 20;
    let b = vec![1.0f64; n];
    let c = vec![2.0f64; n];
    let mut a = vec![0.0f64; n];
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        for i in 0..n {
            a[i] = b[i] + 0.5 * c[i];
        }
        black_box(&a);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    24.0 * n as f64 / best
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

    let sizes: &[usize] = if benching() {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000, 10_000]
    };
    let bandwidth = if benching() {
        triad_bandwidth()
    } else {
        f64::NAN
    };
    if benching() {
        eprintln!("streaming triad bandwidth: {:.1} GB/s", bandwidth / 1e9);
    }
    for family in [Family::Lattice, Family::Geometric] {
        let mut group = c.benchmark_group(format!("reconcile/{}", family.name()));
        group.sample_size(10);
        for &target in sizes {
            let cx = build(family, target, 7).unwrap();
            let flow = random_flow(cx.n_edges(), 1);
            let mut out = vec![0.0; cx.n_edges()];
            let (e, t) = (cx.n_edges(), cx.n_triangles());
            let reps = if benching() { 3 } else { 1 };

            // Jacobi CG (the fallback), against the mat-vec bandwidth bound. Per
            // iteration: d1ᵀ p (3T values + indices, read p, write E) and d1 (3T values +
            // indices, read E, write T).
            let mut ws_cg = cx.workspace();
            ws_cg.solver = Solver::ConjugateGradient;
            let rep = cx
                .project_curl_free_into(&flow, &mut ws_cg, &mut out)
                .unwrap();
            let nnz = 6 * t;
            let bytes = 12.0 * nnz as f64 + 16.0 * (e + t) as f64;
            let t0 = Instant::now();
            for _ in 0..reps {
                cx.project_curl_free_into(&flow, &mut ws_cg, &mut out)
                    .unwrap();
            }
            let secs = t0.elapsed().as_secs_f64() / reps as f64;
            let bound = rep.iterations as f64 * bytes / bandwidth;
            eprintln!(
                "{} E={e} T={t} cg: {} iterations, {:.2} ns per non-zero per iteration, \
                 mat-vec bandwidth bound {:.3} ms, measured {:.3} ms ({:.2}x the bound)",
                family.name(),
                rep.iterations,
                secs * 1e9 / (rep.iterations.max(1) * nnz) as f64,
                bound * 1e3,
                secs * 1e3,
                secs / bound
            );

            // The default: a sparse Cholesky factor made on the first call, then two
            // triangular sweeps per call, each reading the factor once (12 B per entry).
            let mut ws = cx.workspace();
            let t0 = Instant::now();
            cx.project_curl_free_into(&flow, &mut ws, &mut out).unwrap();
            let first = t0.elapsed().as_secs_f64();
            if let (_, Some(lnnz)) = ws.factor_nnz() {
                let t0 = Instant::now();
                for _ in 0..reps {
                    cx.project_curl_free_into(&flow, &mut ws, &mut out).unwrap();
                }
                let secs = t0.elapsed().as_secs_f64() / reps as f64;
                let bound = (24.0 * lnnz as f64 + 2.0 * bytes) / bandwidth;
                eprintln!(
                    "{} E={e} T={t} direct: factor {lnnz} entries, first call {:.3} ms, \
                     then {:.3} ms per call; sweep bandwidth bound {:.3} ms ({:.2}x)",
                    family.name(),
                    first * 1e3,
                    secs * 1e3,
                    bound * 1e3,
                    secs / bound
                );
            }
            group.throughput(Throughput::Elements(e as u64));
            group.bench_with_input(BenchmarkId::new("direct", e), &flow, |b, f| {
                b.iter(|| cx.project_curl_free_into(f, &mut ws, &mut out).unwrap())
            });
            group.bench_with_input(BenchmarkId::new("cg", e), &flow, |b, f| {
                b.iter(|| cx.project_curl_free_into(f, &mut ws_cg, &mut out).unwrap())
            });
        }
        group.finish();
    }
}

/// A ring of `n` agents with chords to the agent `n/3` away and to the next-but-one:
/// every agent has 4–6 neighbours and the coupling graph has triangles.
fn coupling(n: usize) -> Coupling {
    let mut edges = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for u in 0..n {
        for (d, w) in [(1, 1.0), (2, 0.6), (n / 3, 0.3)] {
            let v = (u + d) % n;
            let key = (u.min(v), u.max(v));
            if d > 0 && u != v && seen.insert(key) {
                edges.push((key.0 as u32, key.1 as u32, w));
            }
        }
    }
    Coupling::from_edges(n, &edges).unwrap()
}

fn ensemble(c: &mut Criterion) {
    let mut group = c.benchmark_group("ensemble/step");
    for n in [7usize, 64, 1024] {
        let mut e = OnsagerCollectiveEnsemble::new(coupling(n), EnsembleConfig::default()).unwrap();
        let obs: Vec<f64> = (0..e.slots() * 2)
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        // Past the first steps, whose latent expansions and splits are not steady state.
        for _ in 0..50 {
            e.step(&obs).unwrap();
        }
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| e.step(black_box(&obs)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, reconcile, ensemble);
criterion_main!(benches);
