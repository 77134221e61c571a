//! A sequence of datagrams (each prefixed by a 2-byte length and a 1-byte time step) fed
//! to one NodeState, with timers run in between: nothing panics, every counter adds up,
//! and the node's settled flow stays finite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shivya_core::mesh::{NodeConfig, NodeState, WorkloadTopology};
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let config = NodeConfig {
        seed: 7,
        topology: WorkloadTopology::default(),
        ..NodeConfig::default()
    };
    let Ok(mut node) = NodeState::new(config, 0) else { return };
    let _ = node.record_queue_len(1, 3.0);
    let mut now = 0u64;
    let mut rest = data;
    let mut fed = 0u64;
    let mut out = Vec::new();
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        now += u64::from(rest[2]) * 7;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let from = SocketAddr::from(([10, 0, 0, (take % 200) as u8 + 1], 7000));
        node.handle_datagram(from, &rest[..take], now);
        fed += 1;
        rest = &rest[take..];
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        while node.poll_transmit(&mut out).is_some() {}
    }
    let s = node.status();
    assert_eq!(s.counters.frames_in, fed);
    let settled = node.settlement().expect("settles");
    assert!(settled.flow.iter().all(|x| x.is_finite()));
});
