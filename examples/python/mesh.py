"""Two nodes in one Python process: discover, report load, print the settled routes.

    pip install ./bindings/python && python examples/python/mesh.py
"""
import select
import time

import shivya


def now_ms():
    return int(time.monotonic() * 1000)


def main():
    a_cfg = shivya.default_config()
    a_cfg.n_vertices = 3
    a = shivya.ShivyaNode(a_cfg, now_ms())
    b_cfg = shivya.default_config()
    b_cfg.n_vertices = 3
    b_cfg.seed = 2
    b_cfg.bootstrap = [a.local_addr()]
    b = shivya.ShivyaNode(b_cfg, now_ms())

    a.record_queue_len(0, 12.0)
    b.record_queue_len(2, 3.0)
    poller = select.poll()
    for n in (a, b):
        poller.register(n.fd(), select.POLLIN)
    deadline = now_ms() + 3000
    while now_ms() < deadline and a.status().records < 2:
        poller.poll(min(a.next_timeout_ms(now_ms()), b.next_timeout_ms(now_ms()), 50))
        for n in (a, b):
            n.step(now_ms())
    print("shivya", shivya.version(), "routes:")
    for r in a.settle():
        print(f"  {r.src} -> {r.dst} at {r.rate:.2f}")
    try:
        a.record_queue_len(0, float("nan"))
    except shivya.ShivyaError.InvalidArgument as e:
        print("bad input is an error:", e)
    a.close()
    b.close()


if __name__ == "__main__":
    main()
