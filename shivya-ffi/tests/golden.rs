//! The bowtie reconciliation every binding must reproduce bit for bit
//! (bindings/testdata/bowtie.json). Regenerate with SHIVYA_BLESS=1.

use shivya::{Edge, Reconciler, Triangle};

const EDGES: [(u32, u32); 6] = [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)];
const TRIANGLES: [(u32, u32, u32); 2] = [(0, 1, 2), (2, 3, 4)];
const FLOW: [f64; 6] = [1.0, -0.5, 2.25, 0.75, -1.5, 3.0];

fn render(bits: &[u64]) -> String {
    let pairs = |v: &[(u32, u32)]| {
        v.iter()
            .map(|(a, b)| format!("[{a}, {b}]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tris = TRIANGLES
        .iter()
        .map(|(a, b, c)| format!("[{a}, {b}, {c}]"))
        .collect::<Vec<_>>()
        .join(", ");
    let flow = FLOW
        .iter()
        .map(|x| format!("{x:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let hex = bits
        .iter()
        .map(|b| format!("\"{b:016x}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{{\n  \"n_vertices\": 5,\n  \"edges\": [{}],\n  \"triangles\": [{tris}],\n  \"flow\": [{flow}],\n  \"expected_bits\": [{hex}]\n}}\n",
        pairs(&EDGES)
    )
}

#[test]
fn bowtie_golden_file_matches_the_rust_reconciler() {
    let r = Reconciler::new(
        5,
        EDGES.iter().map(|&(a, b)| Edge { a, b }).collect(),
        TRIANGLES
            .iter()
            .map(|&(a, b, c)| Triangle { a, b, c })
            .collect(),
    )
    .unwrap();
    let out = r.reconcile(FLOW.to_vec()).unwrap();
    let bits: Vec<u64> = out.flow.iter().map(|x| x.to_bits()).collect();
    let text = render(&bits);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bindings/testdata/bowtie.json"
    );
    if std::env::var_os("SHIVYA_BLESS").is_some() {
        std::fs::write(path, &text).unwrap();
        return;
    }
    assert_eq!(
        std::fs::read_to_string(path).unwrap_or_default(),
        text,
        "bowtie.json is stale"
    );
    // And the result is curl-free: the circulation part of FLOW is gone.
    assert!(out.residual <= 1e-10);
}
