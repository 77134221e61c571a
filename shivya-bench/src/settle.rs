//! What one settle costs as the mesh grows: N balancers' records of B backends each,
//! re-summed from scratch (what every settle did before the merged sums were kept) against
//! one record changing and the kept sums settled (what a node does now). Also the bytes the
//! records take at each size.

use crate::report::Table;
use shivya_core::mesh::{MergedSums, Reconciler, RecordStore, SettleMode, WorkloadTopology};
use shivya_core::p2p::protocol::RecordWire;
use shivya_core::p2p::NodeId;
use std::time::Instant;

/// One row: N, backends, µs per settle re-summing every record, µs per changed record
/// with kept sums, and the bytes of the record entries held.
pub struct Row {
    /// Balancers (records).
    pub n: usize,
    /// Backends per record.
    pub backends: u32,
    /// Median µs of a settle that re-sums every record.
    pub full_us: f64,
    /// Median µs of merging one changed record and settling the kept sums.
    pub incremental_us: f64,
    /// Bytes of the records' entries.
    pub bytes: usize,
}

fn record(origin: usize, version: u64, backends: u32) -> RecordWire {
    RecordWire {
        origin: NodeId::from_seed(origin as u64),
        version,
        queue: (0..backends)
            .map(|v| {
                (
                    v,
                    0.1 * f64::from(1 + (v + origin as u32 + version as u32) % 9),
                )
            })
            .collect(),
        offload: vec![],
        seal: None,
    }
}

/// Measures one size (median of `reps` settles each way).
pub fn measure(n: usize, backends: u32, reps: usize) -> Result<Row, String> {
    let topology = WorkloadTopology::for_backends(backends).map_err(|e| e.to_string())?;
    let mut rec = Reconciler::new(topology, Default::default()).map_err(|e| e.to_string())?;
    let mut store = RecordStore::new(n + 1);
    for i in 0..n {
        store.merge(&record(i, 1, backends));
    }
    let bytes: usize = store
        .iter()
        .map(|r| std::mem::size_of::<RecordWire>() + r.queue.capacity() * 16)
        .sum();
    let mode = SettleMode::CurlFree;
    let mut full = Vec::with_capacity(reps);
    let mut incremental = Vec::with_capacity(reps);
    for k in 0..reps {
        // One balancer writes (a new version of its record), then the node settles.
        let changed = record(k % n, 2 + k as u64, backends);
        let t = Instant::now();
        store.merge(&changed);
        let a = rec
            .settle_sums(store.sums(), mode, 1.0, 1e-9)
            .map_err(|e| e.to_string())?;
        incremental.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let b = rec
            .settle_sums(&MergedSums::of(store.iter()), mode, 1.0, 1e-9)
            .map_err(|e| e.to_string())?;
        full.push(t.elapsed().as_secs_f64() * 1e6);
        if a.flow != b.flow {
            return Err("kept and re-summed sums settled to different flows".into());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(Row {
        n,
        backends,
        full_us: median(&mut full),
        incremental_us: median(&mut incremental),
        bytes,
    })
}

/// The table of rows.
pub fn table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
        "N",
        "backends",
        "settle, re-summing every record (µs)",
        "settle, one changed record, kept sums (µs)",
        "record entries held (MiB)",
    ]);
    for r in rows {
        t.push(vec![
            r.n.to_string(),
            r.backends.to_string(),
            format!("{:.0}", r.full_us),
            format!("{:.0}", r.incremental_us),
            format!("{:.1}", r.bytes as f64 / (1024.0 * 1024.0)),
        ]);
    }
    t
}
