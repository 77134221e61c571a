//! L0 properties: boundary operators, decomposition, projection, solver behaviour.

use proptest::prelude::*;
use shivya_core::graph::Graph;
use shivya_core::hodge::{dot, norm, HodgeError, HodgeParts, SimplicialComplex, Solver};
use shivya_core::rng::Rng;

/// A random graph on `n` vertices with edge probability `p`, random orientations, and
/// every 3-clique as a triangle with a random vertex order.
fn random_complex(seed: u64, n: usize, p: f64) -> SimplicialComplex {
    let mut rng = Rng::new(seed);
    let mut und = Vec::new();
    for u in 0..n as u32 {
        for v in u + 1..n as u32 {
            if rng.chance(p) {
                und.push((u, v, 1.0));
            }
        }
    }
    let g = Graph::new(n, &und).unwrap();
    let edges: Vec<(u32, u32)> = und
        .iter()
        .map(|&(u, v, _)| if rng.chance(0.5) { (u, v) } else { (v, u) })
        .collect();
    let tris: Vec<(u32, u32, u32)> = g
        .triangles()
        .into_iter()
        .map(|(a, b, c)| match rng.below(3) {
            0 => (a, b, c),
            1 => (b, c, a),
            _ => (c, b, a),
        })
        .collect();
    SimplicialComplex::new(n, &edges, &tris).unwrap()
}

fn random_flow(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed ^ 0xF10F);
    (0..len).map(|_| rng.range_f64(-1.0, 1.0)).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `d1 · v` as a vector over triangles.
fn d1_times(c: &SimplicialComplex, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; c.n_triangles()];
    c.d1().mul_vec(v, &mut out);
    out
}

fn bowtie() -> SimplicialComplex {
    SimplicialComplex::new(
        5,
        &[(0, 1), (1, 2), (0, 2), (0, 3), (3, 4), (0, 4)],
        &[(0, 1, 2), (0, 3, 4)],
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn boundary_of_boundary_is_exactly_zero(seed in any::<u64>(), n in 3usize..28, p in 0.1f64..0.6) {
        let c = random_complex(seed, n, p);
        let (d0, d1) = (c.d0(), c.d1());
        for t in 0..d1.rows() {
            let mut acc = vec![0.0f64; c.n_vertices()];
            for (e, s) in d1.row(t) {
                for (v, w) in d0.row(e as usize) {
                    acc[v as usize] += s * w;
                }
            }
            prop_assert!(acc.iter().all(|&x| x == 0.0), "triangle {t}: {acc:?}");
        }
    }

    #[test]
    fn parts_sum_to_input_and_are_orthogonal(seed in any::<u64>(), n in 3usize..28, p in 0.1f64..0.6) {
        let c = random_complex(seed, n, p);
        let x = random_flow(seed, c.n_edges());
        let (parts, report) = c.decompose(&x).unwrap();
        prop_assert!(report.converged(), "{report:?}");
        let sum: Vec<f64> = (0..x.len()).map(|i| parts.gradient[i] + parts.curl[i] + parts.harmonic[i]).collect();
        prop_assert!(max_abs_diff(&sum, &x) <= 1e-9);
        for (a, b) in [(&parts.gradient, &parts.curl), (&parts.gradient, &parts.harmonic), (&parts.curl, &parts.harmonic)] {
            let ip = dot(a, b).abs();
            prop_assert!(ip <= 1e-9, "inner product {ip:e}");
        }
    }

    #[test]
    fn direct_and_iterative_solves_agree(seed in any::<u64>(), n in 3usize..28, p in 0.1f64..0.9) {
        // Dense random complexes hold hollow tetrahedra, so L2 is often singular there:
        // the factor drops those pivots and must still solve the consistent system.
        let c = random_complex(seed, n, p);
        let x = random_flow(seed, c.n_edges());
        let mut ws = c.workspace();
        prop_assert_eq!(ws.solver, Solver::default());
        let mut direct = HodgeParts::default();
        let rep = c.decompose_into(&x, &mut ws, &mut direct).unwrap();
        prop_assert!(rep.converged(), "{rep:?}");
        prop_assert_eq!(rep.iterations(), 0, "the default factors this small complex");
        let (cg, _) = c.decompose(&x).unwrap();
        prop_assert!(max_abs_diff(&direct.curl, &cg.curl) <= 1e-8);
        prop_assert!(max_abs_diff(&direct.gradient, &cg.gradient) <= 1e-8);
        for (a, b) in [(&direct.gradient, &direct.curl), (&direct.gradient, &direct.harmonic), (&direct.curl, &direct.harmonic)] {
            let ip = dot(a, b).abs();
            prop_assert!(ip <= 1e-11, "inner product {ip:e}");
        }
        // A second call reuses the factor and gives the same bits.
        let mut again = HodgeParts::default();
        c.decompose_into(&x, &mut ws, &mut again).unwrap();
        prop_assert_eq!(&again, &direct);
        // Forcing CG through the workspace gives the iterative answer.
        ws.solver = Solver::ConjugateGradient;
        let rep = c.decompose_into(&x, &mut ws, &mut again).unwrap();
        prop_assert!(rep.converged() && max_abs_diff(&again.curl, &cg.curl) == 0.0);
    }

    #[test]
    fn projection_is_curl_free_and_idempotent(seed in any::<u64>(), n in 3usize..28, p in 0.1f64..0.6) {
        let c = random_complex(seed, n, p);
        let x = random_flow(seed, c.n_edges());
        let (px, report) = c.project_curl_free(&x).unwrap();
        prop_assert!(report.converged);
        prop_assert!(norm(&d1_times(&c, &px)) < 1e-8);
        let (ppx, _) = c.project_curl_free(&px).unwrap();
        prop_assert!(max_abs_diff(&ppx, &px) <= 1e-7);
    }

    #[test]
    fn gradient_flows_pass_unchanged(seed in any::<u64>(), n in 3usize..28, p in 0.1f64..0.6) {
        let c = random_complex(seed, n, p);
        let f = random_flow(seed ^ 1, c.n_vertices());
        let mut g = vec![0.0; c.n_edges()];
        c.d0().mul_vec(&f, &mut g);
        let (pg, _) = c.project_curl_free(&g).unwrap();
        prop_assert!(max_abs_diff(&pg, &g) <= 1e-9);
        let (parts, _) = c.decompose(&g).unwrap();
        prop_assert!(max_abs_diff(&parts.gradient, &g) <= 1e-9);
    }

    #[test]
    fn curl_flows_project_to_zero(seed in any::<u64>(), n in 4usize..28, p in 0.3f64..0.7) {
        let c = random_complex(seed, n, p);
        let b = random_flow(seed ^ 2, c.n_triangles());
        let mut x = vec![0.0; c.n_edges()];
        c.d1().transpose().mul_vec(&b, &mut x);
        let (px, _) = c.project_curl_free(&x).unwrap();
        prop_assert!(norm(&px) <= 1e-8 * (1.0 + norm(&x)), "{:e}", norm(&px));
    }

    #[test]
    fn decomposition_is_bit_reproducible(seed in any::<u64>(), n in 3usize..20) {
        let c = random_complex(seed, n, 0.4);
        let x = random_flow(seed, c.n_edges());
        let (a, _) = c.decompose(&x).unwrap();
        let (b, _) = c.clone().decompose(&x).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&a.gradient), bits(&b.gradient));
        prop_assert_eq!(bits(&a.curl), bits(&b.curl));
        prop_assert_eq!(bits(&a.harmonic), bits(&b.harmonic));
    }
}

#[test]
fn a_square_hole_keeps_its_known_harmonic_part() {
    // 4-cycle 0→1→2→3→0 with no triangle. For x = e_0 the harmonic part is the
    // projection onto the cycle vector (1,1,1,1)/2, i.e. ¼ on every edge.
    let c = SimplicialComplex::new(4, &[(0, 1), (1, 2), (2, 3), (3, 0)], &[]).unwrap();
    let (parts, _) = c.decompose(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    for h in &parts.harmonic {
        assert!((h - 0.25).abs() < 1e-12, "{:?}", parts.harmonic);
    }
    let expect_grad = [0.75, -0.25, -0.25, -0.25];
    assert!(max_abs_diff(&parts.gradient, &expect_grad) < 1e-12);
    assert!(parts.curl.iter().all(|&x| x == 0.0));
    // Reversing one edge's orientation flips that edge's harmonic sign.
    let c2 = SimplicialComplex::new(4, &[(0, 1), (2, 1), (2, 3), (3, 0)], &[]).unwrap();
    let (p2, _) = c2.decompose(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(max_abs_diff(&p2.harmonic, &[0.25, -0.25, 0.25, 0.25]) < 1e-12);
}

#[test]
fn bowtie_converges_within_ten_iterations() {
    let c = bowtie();
    let x = [1.0, 2.0, -0.5, 0.25, 3.0, -1.0];
    let (parts, report) = c.decompose(&x).unwrap();
    assert!(report.converged());
    assert!(report.iterations() <= 10, "{report:?}");
    assert!(report.gradient.iterations <= 10 && report.curl.iterations <= 10);
    // Triangle circulation is removed: d1 · (gradient + harmonic) = 0.
    let cf: Vec<f64> = (0..6)
        .map(|i| parts.gradient[i] + parts.harmonic[i])
        .collect();
    assert!(norm(&d1_times(&c, &cf)) < 1e-8);
    // The bowtie has no holes: the harmonic part vanishes.
    assert!(norm(&parts.harmonic) < 1e-9);
}

#[test]
fn bad_complexes_are_rejected_with_named_errors() {
    use HodgeError::*;
    let e = |r: Result<SimplicialComplex, HodgeError>| r.unwrap_err();
    assert!(matches!(
        e(SimplicialComplex::new(3, &[(0, 3)], &[])),
        EdgeVertexOutOfRange { bad: 3, .. }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(3, &[(1, 1)], &[])),
        SelfLoop { u: 1 }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(3, &[(0, 1), (1, 0)], &[])),
        DuplicateEdge { u: 0, v: 1 }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(3, &[(0, 1), (1, 2)], &[(0, 1, 2)])),
        MissingTriangleEdge { u: 0, v: 2, .. }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(
            3,
            &[(0, 1), (1, 2), (0, 2)],
            &[(0, 1, 1)]
        )),
        DegenerateTriangle { .. }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(
            3,
            &[(0, 1), (1, 2), (0, 2)],
            &[(0, 1, 2), (2, 0, 1)]
        )),
        DuplicateTriangle { .. }
    ));
    assert!(matches!(
        e(SimplicialComplex::new(
            3,
            &[(0, 1), (1, 2), (0, 2)],
            &[(0, 1, 9)]
        )),
        TriangleVertexOutOfRange { bad: 9, .. }
    ));
    assert_eq!(
        e(SimplicialComplex::new(5, &[(3, 7)], &[])).to_string(),
        "edge (3, 7) refers to vertex 7 but the complex has 5 vertices"
    );
}

#[test]
fn bad_flows_are_rejected_and_the_workspace_stays_usable() {
    let c = bowtie();
    let mut ws = c.workspace();
    let mut out = vec![0.0; 6];
    assert!(matches!(
        c.project_curl_free_into(&[1.0; 5], &mut ws, &mut out),
        Err(HodgeError::FlowLength {
            expected: 6,
            got: 5
        })
    ));
    assert!(matches!(
        c.project_curl_free_into(&[1.0, f64::NAN, 0.0, 0.0, 0.0, 0.0], &mut ws, &mut out),
        Err(HodgeError::NonFiniteFlow { index: 1, .. })
    ));
    assert!(matches!(
        c.project_curl_free_into(&[f64::INFINITY; 6], &mut ws, &mut out),
        Err(HodgeError::NonFiniteFlow { index: 0, .. })
    ));
    assert!(matches!(
        c.project_curl_free_into(&[1.0; 6], &mut ws, &mut [0.0; 2]),
        Err(HodgeError::OutputLength { .. })
    ));
    let other = SimplicialComplex::new(2, &[(0, 1)], &[]).unwrap();
    let mut wrong = other.workspace();
    assert!(matches!(
        c.project_curl_free_into(&[1.0; 6], &mut wrong, &mut out),
        Err(HodgeError::WorkspaceMismatch { .. })
    ));
    let report = c
        .project_curl_free_into(&[1.0; 6], &mut ws, &mut out)
        .unwrap();
    assert!(report.converged);
}

#[test]
fn gradient_only_mode_removes_hole_circulation_too() {
    let c = SimplicialComplex::new(4, &[(0, 1), (1, 2), (2, 3), (3, 0)], &[]).unwrap();
    let mut ws = c.workspace();
    let mut out = vec![0.0; 4];
    c.project_gradient_into(&[1.0, 1.0, 1.0, 1.0], &mut ws, &mut out)
        .unwrap();
    assert!(norm(&out) < 1e-12, "{out:?}");
}

#[test]
fn enormous_finite_flows_are_refused_instead_of_overflowing() {
    // Found by fuzzing the C ABI: values near 1e238 overflowed the CG inner products and
    // came back as NaN. They are refused with a clear error now; 1e100 still works.
    let c = SimplicialComplex::new(3, &[(0, 1), (0, 2), (1, 2)], &[(0, 1, 2)]).unwrap();
    let err = c.project_curl_free(&[-3.4e238, 1.0, 2.0]).unwrap_err();
    assert!(
        matches!(
            err,
            shivya_core::hodge::HodgeError::FlowOutOfRange { index: 0, .. }
        ),
        "{err}"
    );
    let (out, _) = c.project_curl_free(&[1e100, -1e100, 1e100]).unwrap();
    assert!(out.iter().all(|x| x.is_finite()));
}

#[test]
fn a_flow_mixing_magnitudes_gives_finite_output_or_a_breakdown_error() {
    // Found by fuzzing the C ABI: one entry near 1e86 among entries near 4e13 on a
    // 9-vertex complex made the CG step size overflow and returned NaN. The result is now
    // either finite or HodgeError::Breakdown, never NaN.
    let edges = [
        (5, 7),
        (6, 0),
        (4, 5),
        (0, 4),
        (4, 1),
        (5, 2),
        (2, 0),
        (1, 0),
        (7, 2),
        (1, 2),
        (0, 5),
        (7, 4),
        (8, 2),
        (0, 7),
        (0, 3),
        (4, 8),
        (2, 3),
        (8, 5),
        (6, 7),
        (6, 2),
        (4, 2),
        (3, 4),
        (1, 7),
    ];
    let tris = [
        (7, 2, 1),
        (7, 0, 5),
        (7, 0, 2),
        (0, 4, 7),
        (0, 3, 4),
        (0, 5, 4),
        (5, 7, 4),
    ];
    let c = SimplicialComplex::new(9, &edges, &tris).unwrap();
    let mut flow = vec![-41255400998277.516; 23];
    flow[0] = -41378420228100.984;
    flow[16] = -1.380132927512208e86;
    for v in flow.iter_mut().skip(17) {
        *v = 0.0;
    }
    match c.project_curl_free(&flow) {
        Ok((out, _)) => assert!(out.iter().all(|x| x.is_finite())),
        Err(e) => assert!(
            matches!(e, shivya_core::hodge::HodgeError::Breakdown { .. }),
            "{e}"
        ),
    }
}
