"""Real traffic through nginx: two nginx instances in front of three backends with real
capacity limits, driven by an open-loop Poisson client, comparing nginx's round-robin,
`least_conn`, `random two least_conn` and Shivya side by side.

    python3 tests/nginx/bench_nginx.py                 # the published run (a few minutes)
    python3 tests/nginx/bench_nginx.py --quick         # seconds: checks the harness

Each backend serves 4 requests at a time and queues the rest; service times are
exponential with mean 4 ms (40 ms for a slow one). Scenarios: `slow` (backend 1 is 10x
slower throughout), `equal`, `turning` (backend 1 turns 10x slower halfway). The runs are
interleaved (every policy once per scenario, then again), each with fresh backends and
fresh nginx instances, and the report gives the median and range over runs. Latency is
measured from each request's scheduled send time (see tests/nginx/loadgen). Results go
to stdout as a markdown table and to --out as CSV.
"""
import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("SHIVYA_TARGET_DIR") or os.path.join(ROOT, "target")
MODULE = os.path.join(TARGET, "nginx", "ngx_http_shivya_module.so")
LOADGEN = os.path.join(TARGET, "loadgen", "loadgen")
NGINX = "/usr/sbin/nginx"

POLICIES = {
    "round-robin": "",
    "least_conn": "least_conn;",
    "random two least_conn": "random two least_conn;",
    "shivya": "shivya;",
}
FAST_MS, SLOW_MS, SLOTS = 4.0, 40.0, 4

CONF = """
load_module {module};
daemon off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    {mesh}
    upstream app {{
        {policy}
        {servers}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{http};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 10s;
        }}
        {status}
    }}
}}
"""


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, f, deadline=10):
    start = time.time()
    while True:
        try:
            if f():
                return
        except OSError:
            pass
        if time.time() - start > deadline:
            raise RuntimeError(f"{what}: not reached in {deadline} s")
        time.sleep(0.05)


def build_loadgen():
    os.makedirs(os.path.dirname(LOADGEN), exist_ok=True)
    subprocess.run(["go", "build", "-o", LOADGEN, "."], check=True,
                   cwd=os.path.join(ROOT, "tests", "nginx", "loadgen"))


def start_backends(delays, seed):
    procs, ports = [], []
    for k, ms in enumerate(delays):
        p = subprocess.Popen([LOADGEN, "backend", "-listen", "127.0.0.1:0", "-slots", str(SLOTS),
                              "-service-ms", str(ms), "-seed", str(seed * 10 + k)],
                             stdout=subprocess.PIPE, text=True)
        addr = p.stdout.readline().strip()
        procs.append(p)
        ports.append(int(addr.rsplit(":", 1)[1]))
    return procs, ports


def start_nginx(tmp, policy, backend_ports):
    http = [free_port(), free_port()]
    udp = [free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)]
    procs = []
    servers = "\n        ".join(f"server 127.0.0.1:{p} max_fails=0;" for p in backend_ports)
    for i in range(2):
        d = tempfile.mkdtemp(prefix=f"n{i}-", dir=tmp)
        shivya = policy == "shivya"
        mesh = f"shivya_listen 127.0.0.1:{udp[i]}; shivya_peer 127.0.0.1:{udp[1 - i]};" if shivya else ""
        status = "location = /shivya_status { shivya_status; }" if shivya else ""
        conf = CONF.format(module=MODULE, dir=d, mesh=mesh, policy=POLICIES[policy],
                           servers=servers, http=http[i], status=status)
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        procs.append(subprocess.Popen([NGINX, "-p", d, "-c", path], stderr=subprocess.DEVNULL))
    for i in range(2):
        wait_for("nginx up", lambda i=i: get(f"http://127.0.0.1:{http[i]}/warm") == "ok\n")
    if policy == "shivya":
        def peered():
            return all(json.loads(get(f"http://127.0.0.1:{h}/shivya_status"))["peer_count"] >= 1
                       for h in http)
        wait_for("the two nginx nodes peer", peered)
    return procs, http


def stop(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM) if p.poll() is None else None
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_run(tmp, scenario, policy, args, seed):
    delays = [FAST_MS] * 3
    if scenario == "slow":
        delays[1] = SLOW_MS
    backends, bports = start_backends(delays, seed)
    nginx = []
    try:
        nginx, http = start_nginx(tmp, policy, bports)
        cmd = [LOADGEN, "client", "-targets", ",".join(f"http://127.0.0.1:{h}/x" for h in http),
               "-rate", str(args.rate), "-duration", f"{args.duration}s", "-warmup", f"{args.warmup}s",
               "-seed", str(seed)]
        if scenario == "turning":
            cmd += ["-at", f"{args.duration / 2}s",
                    "-at-url", f"http://127.0.0.1:{bports[1]}/_delay?ms={SLOW_MS}"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res = json.loads(out)
        served = [int(get(f"http://127.0.0.1:{p}/_served")) for p in bports]
        res["share_1"] = served[1] / max(1, sum(served))
        return res
    finally:
        stop(nginx)
        stop(backends)


def median_range(xs):
    xs = [x for x in xs if x is not None and x >= 0]
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds: checks the harness")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1200.0)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--scenarios", default="slow,equal,turning")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--out", default=os.path.join(TARGET, "bench-nginx"))
    ap.add_argument("--check", action="store_true",
                    help="fail unless every request succeeded and Shivya sent the slow backend "
                         "less than a blind third")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 3.0, 0.5
        args.rate = min(args.rate, 600.0)
    scenarios = args.scenarios.split(",")
    policies = args.policies.split(",")
    for p in policies:
        if p not in POLICIES:
            sys.exit(f"unknown policy {p!r}; known: {', '.join(POLICIES)}")
    for s in scenarios:
        if s not in ("slow", "equal", "turning"):
            sys.exit(f"unknown scenario {s!r}")
    if not os.path.exists(MODULE):
        sys.exit(f"{MODULE} is missing: run examples/nginx/build.sh first")
    build_loadgen()
    tmp = tempfile.mkdtemp(prefix="shivya-bench-nginx-")
    results = {}
    try:
        for run in range(args.runs):
            for scenario in scenarios:
                for policy in policies:
                    r = one_run(tmp, scenario, policy, args, seed=100 + run)
                    results.setdefault((scenario, policy), []).append(r)
                    print(f"run {run + 1} {scenario:8} {policy:22} p99 {r['p99_ms']:8.1f} ms "
                          f"errors {r['errors']} share(1) {r['share_1']:.3f}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for scenario in scenarios:
        for policy in policies:
            rs = results[(scenario, policy)]
            p99 = median_range([r["p99_ms"] for r in rs])
            rows.append({
                "scenario": scenario, "policy": policy, "runs": len(rs),
                "p50_ms": median_range([r["p50_ms"] for r in rs])[0],
                "p99_ms": p99[0], "p99_min": p99[1], "p99_max": p99[2],
                "p999_ms": median_range([r["p999_ms"] for r in rs])[0],
                "p99_first_half_ms": median_range([r["p99_before_event_ms"] for r in rs])[0],
                "p99_second_after_ms": median_range([r["p99_after_event_ms"] for r in rs])[0],
                "share_backend_1": median_range([r["share_1"] for r in rs])[0],
                "errors": sum(r["errors"] for r in rs),
                "sent": sum(r["sent"] for r in rs),
            })
    path = os.path.join(args.out, "nginx.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    def fmt(x):
        return "—" if x is None else f"{x:.1f}"
    print(f"\n### nginx: two instances, three backends ({SLOTS} slots each), "
          f"{args.rate:.0f} req/s open-loop, {args.runs} runs\n")
    print("| scenario | policy | p50 ms | p99 ms (median) | p99 range | p99.9 ms | p99 1st half | "
          "p99 1 s after turn | share of backend 1 | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['policy']} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | "
              f"{fmt(r['p99_min'])}–{fmt(r['p99_max'])} | {fmt(r['p999_ms'])} | "
              f"{fmt(r['p99_first_half_ms'])} | {fmt(r['p99_second_after_ms'])} | "
              f"{r['share_backend_1']:.3f} | {r['errors']} |")
    print(f"\nwrote {path}", file=sys.stderr)
    if args.check:
        assert len(rows) == len(scenarios) * len(policies), rows
        for r in rows:
            assert r["errors"] == 0 and r["sent"] > 0, r
            assert r["p99_ms"] is not None and r["p99_ms"] > 0, r
            if r["policy"] == "shivya" and r["scenario"] == "slow":
                assert r["share_backend_1"] < 0.2, r
        print("bench harness: ok", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
