"""The host-loop helpers: asyncio (shivya.run) and a helper thread (shivya.Runner).
Each drives two real nodes on loopback to discovery and a replicated write, stops on
request, and leaves no task, thread, reader or descriptor behind."""
import asyncio
import os
import threading
import time

import pytest

import shivya


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def two_nodes(seed):
    nodes = []
    for i in range(2):
        cfg = shivya.default_config()
        cfg.seed = seed + i
        cfg.n_vertices = 3
        if nodes:
            cfg.bootstrap = [nodes[0].local_addr()]
        nodes.append(shivya.ShivyaNode(cfg, shivya.monotonic_ms()))
    return nodes


def converged(a, b):
    sa, sb = a.status(), b.status()
    return sa.peers == 1 and sb.peers == 1 and sa.records == 1


def test_asyncio_run_drives_nodes_until_cancelled_and_cleans_up():
    fds = open_fds()

    async def main():
        a, b = two_nodes(880)
        tasks = [asyncio.create_task(shivya.run(n)) for n in (a, b)]
        b.record_queue_len(1, 2.5)
        deadline = time.monotonic() + 10
        while not converged(a, b):
            assert time.monotonic() < deadline, "no discovery under shivya.run"
            await asyncio.sleep(0.01)
        # The loop stays responsive: run() yields while it waits.
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        assert time.monotonic() - t0 < 0.5
        for t in tasks:
            t.cancel()
        done, pending = await asyncio.wait(tasks, timeout=2)
        assert not pending, "run() did not end on cancel"
        assert all(t.cancelled() for t in done)
        loop = asyncio.get_running_loop()
        # The readers are gone: a second add/remove pair sees no old reader.
        for n in (a, b):
            assert loop.remove_reader(n.fd()) is False
        a.close()
        b.close()
        # run() on a closed node returns quietly.
        await asyncio.wait_for(shivya.run(a), timeout=1)

    asyncio.run(main())
    assert open_fds() == fds


def test_asyncio_run_ends_when_the_node_is_closed_under_it():
    async def main():
        (a,) = two_nodes(890)[:1]
        task = asyncio.create_task(shivya.run(a))
        await asyncio.sleep(0.02)
        a.close()
        # The next timer (at most ~50 ms away) finds the node closed.
        await asyncio.wait_for(task, timeout=2)

    asyncio.run(main())


def test_thread_runner_drives_nodes_and_leaves_no_thread_or_descriptor():
    threads, fds = threading.active_count(), open_fds()
    a, b = two_nodes(900)
    with shivya.Runner(a), shivya.Runner(b):
        assert threading.active_count() == threads + 2
        b.record_queue_len(1, 2.5)
        deadline = time.monotonic() + 10
        while not converged(a, b):
            assert time.monotonic() < deadline, "no discovery under shivya.Runner"
            time.sleep(0.01)
        # Other threads use the node meanwhile.
        assert a.pick(shivya.monotonic_ms()) in (0, 1, 2)
    assert threading.active_count() == threads
    a.close()
    b.close()
    assert open_fds() == fds


def test_thread_runner_stop_is_idempotent_and_a_closed_node_ends_it():
    (a,) = two_nodes(910)[:1]
    r = shivya.Runner(a)
    a.close()
    r._thread.join(timeout=2)
    assert not r._thread.is_alive(), "the runner did not notice the closed node"
    r.stop()
    r.stop()
    # A bad clock is the host's error: it surfaces from stop().
    (c,) = two_nodes(920)[:1]

    def bad_clock():
        raise RuntimeError("clock broke")

    r = shivya.Runner(c, now=bad_clock)
    r._thread.join(timeout=2)
    with pytest.raises(RuntimeError, match="clock broke"):
        r.stop()
    c.close()
