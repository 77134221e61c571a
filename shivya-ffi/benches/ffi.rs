//! Cost of crossing the C ABI: an idle `shivya_step` and one `shivya_record_queue_len`.

use criterion::{criterion_group, criterion_main, Criterion};
use shivya::*;
use std::hint::black_box;
use std::ptr;

fn node() -> *mut shivya_node {
    let mut cfg = ptr::null_mut();
    assert_eq!(shivya_config_new(&mut cfg), shivya_status::SHIVYA_OK);
    let mut node = ptr::null_mut();
    assert_eq!(shivya_node_new(cfg, 0, &mut node), shivya_status::SHIVYA_OK);
    shivya_config_free(cfg);
    node
}

fn bench(c: &mut Criterion) {
    let n = node();
    // Run the start-up timers once, then stay at a time when nothing is due.
    shivya_step(n, 0);
    let mut idle_now = 1;
    let mut t = 0u64;
    shivya_next_timeout_ms(n, idle_now, &mut t);
    if t == 0 {
        idle_now = 0;
    }
    c.bench_function("ffi/shivya_step_idle", |b| {
        b.iter(|| black_box(shivya_step(black_box(n), black_box(idle_now))))
    });
    let mut q = 0.0;
    c.bench_function("ffi/shivya_record_queue_len", |b| {
        b.iter(|| {
            q += 1.0;
            black_box(shivya_record_queue_len(black_box(n), 1, q))
        })
    });
    shivya_node_free(n);
}

criterion_group!(benches, bench);
criterion_main!(benches);
