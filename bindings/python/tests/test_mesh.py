"""Three nodes on loopback in one Python process, driven by Python's own poll loop."""
import json
import math
import os
import resource
import select
import struct
import time
import tracemalloc

import pytest

import shivya

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "..", "testdata", "bowtie.json")


def now_ms():
    return int(time.monotonic() * 1000)


def make_nodes(n=3, vertices=3, seed=700):
    nodes = []
    for i in range(n):
        cfg = shivya.default_config()
        cfg.seed = seed + i
        cfg.n_vertices = vertices
        if nodes:
            cfg.bootstrap = [nodes[0].local_addr()]
        nodes.append(shivya.ShivyaNode(cfg, now_ms()))
    return nodes


def turn(nodes):
    """One round of the host loop: wait on the sockets for the earliest timer, then step."""
    p = select.poll()
    for n in nodes:
        p.register(n.fd(), select.POLLIN)
    wait = min(n.next_timeout_ms(now_ms()) for n in nodes)
    p.poll(min(wait, 50))
    t = now_ms()
    for n in nodes:
        n.step(t)


def run_until(nodes, done, deadline_ms=10_000):
    start = now_ms()
    while not done():
        assert now_ms() - start < deadline_ms, "condition not reached before the deadline"
        turn(nodes)
    return now_ms() - start


def run_for(nodes, ms):
    end = now_ms() + ms
    while now_ms() < end:
        turn(nodes)


def same_routes(nodes):
    first = nodes[0].settle()
    return bool(first) and all(n.settle() == first for n in nodes[1:])


def test_three_nodes_discover_partition_heal_and_agree():
    nodes = make_nodes()
    try:
        ms = run_until(nodes, lambda: all(n.status().peers >= 2 for n in nodes))
        print(f"discovery in {ms} ms")
        # Every node writes every vertex and one shared edge, with values inexact in
        # binary: a node summing records in another order would differ in the last bits.
        for i, n in enumerate(nodes):
            for v in range(3):
                n.record_queue_len(v, (v + 1) * (0.1 * (i + 1) + 1 / 3))
            n.record_offload(0, 1, 0.1 + i / 3)
        run_until(nodes, lambda: all(n.status().records == 3 for n in nodes) and same_routes(nodes))

        # Partition node 2 away from 0 and 1; both sides write.
        addrs = [n.local_addr() for n in nodes]
        for a, b in [(0, 2), (1, 2), (2, 0), (2, 1)]:
            nodes[a].block(addrs[b])
        nodes[0].record_queue_len(1, 40.1)
        nodes[2].record_queue_len(0, 25.3)
        run_for(nodes, 600)
        assert nodes[0].settle() != nodes[2].settle(), "sides agree while cut off"

        for a in range(3):
            for b in addrs:
                nodes[a].unblock(b)
        ms = run_until(nodes, lambda: same_routes(nodes))
        print(f"converged {ms} ms after heal")
        routes = nodes[0].settle()
        assert all(r.rate > 0 for r in routes)
        assert {(r.src, r.dst) for r in routes}
    finally:
        for n in nodes:
            n.close()


def test_bad_arguments_raise_shivya_errors_and_the_node_keeps_working():
    (node,) = make_nodes(1)
    try:
        with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
            node.record_offload(0, 1, math.nan)
        assert "rate" in str(e.value)
        with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
            node.record_queue_len(99, 1.0)
        assert "vertex 99" in str(e.value)
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            node.block("not-an-address")
        node.record_queue_len(0, 3.0)
        node.step(now_ms())
        assert node.settle()
    finally:
        node.close()
    with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
        node.settle()
    assert "closed" in str(e.value)
    node.close()  # twice is fine


def test_bad_config_and_port_in_use():
    cfg = shivya.default_config()
    cfg.listen = "nonsense"
    with pytest.raises(shivya.ShivyaError.InvalidArgument):
        shivya.ShivyaNode(cfg, 0)
    (a,) = make_nodes(1)
    try:
        cfg = shivya.default_config()
        cfg.listen = a.local_addr()
        with pytest.raises(shivya.ShivyaError.Io):
            shivya.ShivyaNode(cfg, 0)
    finally:
        a.close()


def test_the_balancer_sees_another_balancers_load_and_refuses_bad_reports():
    nodes = make_nodes()
    try:
        run_until(nodes, lambda: all(n.status().peers >= 2 for n in nodes))
        # Node 1 holds 40 requests at backend 2; node 0 has answers from every backend.
        for _ in range(40):
            nodes[1].request_started(2, now_ms())
        for b in range(3):
            nodes[0].request_started(b, now_ms())
            nodes[0].request_finished(b, 10.0, shivya.Outcome.OK, now_ms())

        def picks_of_2():
            return sum(nodes[0].pick(now_ms()) == 2 for _ in range(200))
        before = picks_of_2()
        run_until(nodes, lambda: picks_of_2() <= 10)
        assert before > 30, before
        w = nodes[0].weights()
        assert len(w) == 3 and abs(sum(w) - 1) < 1e-9
        assert isinstance(nodes[0].capacity_signals(), list)
        run_until(nodes, lambda: len({n.view_digest() for n in nodes}) == 1)

        for bad in (math.nan, -1.0, math.inf):
            with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
                nodes[0].request_finished(0, bad, shivya.Outcome.FAILED, now_ms())
            assert "latency_ms" in str(e.value)
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            nodes[0].request_started(3, now_ms())
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            nodes[0].set_backend_weight(0, 0.0)
    finally:
        for n in nodes:
            n.close()
    cfg = shivya.default_config()
    cfg.weight_law = "weight / latency"
    with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
        shivya.ShivyaNode(cfg, 0)
    assert "unknown name 'latency'" in str(e.value)


def test_a_signed_encrypted_pair_admits_each_other_and_rotates_keys():
    secrets = [shivya.generate_identity() for _ in range(2)]
    keys = [shivya.public_key_of(s) for s in secrets]
    assert len(secrets[0]) == 32 and keys[0] != keys[1]
    k1 = shivya.KeyringKey(id=1, key=bytes([0x11]) * 32, primary=True)
    nodes = []
    for i in range(2):
        cfg = shivya.default_config()
        cfg.seed = 900 + i
        cfg.n_vertices = 3
        cfg.identity_secret = secrets[i]
        cfg.admit_keys = keys
        cfg.keyring = [k1]
        if nodes:
            cfg.bootstrap = [nodes[0].local_addr()]
        nodes.append(shivya.ShivyaNode(cfg, now_ms()))
    try:
        assert [n.public_key() for n in nodes] == keys
        nodes[0].record_queue_len(0, 1.5)
        nodes[1].record_queue_len(1, 2.5)
        run_until(nodes, lambda: all(n.status().records == 2 for n in nodes)
                  and nodes[0].view_digest() == nodes[1].view_digest())
        # Rotation while running: add key 2, make it primary, retire key 1.
        k2 = shivya.KeyringKey(id=2, key=bytes([0x22]) * 32, primary=False)
        for n in nodes:
            n.set_keyring([k1, k2])
        k2p = shivya.KeyringKey(id=2, key=k2.key, primary=True)
        k1s = shivya.KeyringKey(id=1, key=k1.key, primary=False)
        for n in nodes:
            n.set_keyring([k1s, k2p])
        for n in nodes:
            n.set_keyring([k2p])
        dropped = nodes[1].status().dropped
        nodes[0].record_queue_len(2, 4.0)
        run_until(nodes, lambda: nodes[0].view_digest() == nodes[1].view_digest())
        assert nodes[1].status().dropped == dropped
        # Bad keys: wrong lengths, two primaries, no key, an allowlist without identity.
        for ring in ([shivya.KeyringKey(id=3, key=b"short", primary=True)],
                     [k1, shivya.KeyringKey(id=2, key=k2.key, primary=True)],
                     []):
            with pytest.raises(shivya.ShivyaError.InvalidArgument):
                nodes[0].set_keyring(ring)
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            shivya.public_key_of(b"too short")
        bad = shivya.default_config()
        bad.admit_keys = keys
        with pytest.raises(shivya.ShivyaError.InvalidArgument) as e:
            shivya.ShivyaNode(bad, now_ms())
        assert "identity" in str(e.value)
        bad.admit_keys = []
        bad.identity_secret = b"x" * 31
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            shivya.ShivyaNode(bad, now_ms())
        # An unsigned, unencrypted node has no key and cannot start encrypting.
        plain = shivya.ShivyaNode(shivya.default_config(), now_ms())
        assert plain.public_key() is None
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            plain.set_keyring([k1])
        plain.shutdown()
    finally:
        for n in nodes:
            n.shutdown()


def test_a_thousand_backend_upstream_works_end_to_end():
    """The default topology for 1 000 backends (the ring with chords); each node's record
    of 1 000 loads crosses real sockets in CHUNK parts; weights and picks cover them all."""
    nodes = make_nodes(n=2, vertices=1000, seed=990)
    try:
        for i, n in enumerate(nodes):
            for v in range(1000):
                n.record_queue_len(v, 0.5 * (1 + (v + i) % 3))
        run_until(nodes, lambda: all(n.status().records == 2 for n in nodes)
                  and nodes[0].view_digest() == nodes[1].view_digest())
        routes = nodes[0].settle()
        assert routes == nodes[1].settle()
        assert all(r.src < 1000 and r.dst < 1000 for r in routes)
        n = nodes[0]
        for b in range(1000):
            n.request_started(b, now_ms())
            n.request_finished(b, 5.0, shivya.Outcome.OK, now_ms())
        w = n.weights()
        assert len(w) == 1000 and abs(sum(w) - 1.0) < 1e-9
        picks = {n.pick(now_ms()) for _ in range(5000)}
        assert len(picks) > 500 and max(picks) < 1000
        with pytest.raises(shivya.ShivyaError.InvalidArgument):
            n.record_queue_len(1000, 1.0)
    finally:
        for n in nodes:
            n.close()


def test_bowtie_reconciliation_matches_rust_bit_for_bit():
    with open(GOLDEN) as f:
        g = json.load(f)
    r = shivya.Reconciler(
        g["n_vertices"],
        [shivya.Edge(a=a, b=b) for a, b in g["edges"]],
        [shivya.Triangle(a=a, b=b, c=c) for a, b, c in g["triangles"]],
    )
    out = r.reconcile(g["flow"])
    bits = [struct.pack(">d", x).hex() for x in out.flow]
    assert bits == g["expected_bits"]
    with pytest.raises(shivya.ShivyaError.InvalidArgument):
        r.reconcile([1.0])


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def light_scenario(i):
    cfg = shivya.default_config()
    cfg.seed = i
    cfg.n_vertices = 3
    n = shivya.ShivyaNode(cfg, 0)
    n.record_queue_len(0, 5.0)
    n.record_offload(0, 1, 1.0)
    n.step(1)
    assert n.settle()
    assert n.status().records == 1
    try:
        n.record_queue_len(9, 1.0)
    except shivya.ShivyaError.InvalidArgument:
        pass
    n.close()


def test_a_thousand_scenarios_do_not_leak():
    for i in range(50):  # warm up allocators and caches
        light_scenario(i)
    tracemalloc.start()
    base_rss = rss_kib()
    snap0 = tracemalloc.take_snapshot()
    for i in range(1000):
        light_scenario(i)
    growth_py = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snap0, "filename"))
    tracemalloc.stop()
    growth_rss = rss_kib() - base_rss
    print(f"1000 scenarios: RSS grew {growth_rss} KiB, Python heap {growth_py} bytes")
    assert growth_rss < 8 * 1024, f"RSS grew {growth_rss} KiB"
    assert growth_py < 256 * 1024, f"Python heap grew {growth_py} bytes"


def three_node_scenario(seed):
    nodes = make_nodes(3, seed=seed)
    try:
        for i, n in enumerate(nodes):
            n.record_queue_len(i, float(i + 1))
        run_until(nodes, lambda: all(n.status().records == 3 and n.status().peers >= 2 for n in nodes)
                  and same_routes(nodes))
    finally:
        for n in nodes:
            n.close()


def test_the_three_node_scenario_a_thousand_times_keeps_rss_stable():
    for i in range(20):
        three_node_scenario(50_000 + 3 * i)
    base = rss_kib()
    t0 = time.time()
    checkpoints = []
    for i in range(1000):
        three_node_scenario(60_000 + 3 * i)
        if i % 250 == 249:
            checkpoints.append(rss_kib() - base)
    print(f"1000 three-node scenarios in {time.time() - t0:.1f} s; RSS growth at 250/500/750/1000: {checkpoints} KiB")
    assert checkpoints[-1] < 8 * 1024, checkpoints
