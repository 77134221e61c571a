"""Jepsen-style test of shivyad with real processes on loopback.

Five daemons keep accepting writes (`write VERTEX QUEUE` on their status sockets) while a
nemesis partitions them (block/unblock), isolates one, heals, and kills one with SIGKILL
and restarts it from its state file. At the end everything is healed and, once the mesh
has converged, check.py verifies: every acknowledged write is present everywhere (the
latest one per node and vertex), all nodes report identical routes and queues, and no
daemon panicked. History, nemesis log and final states are saved under target/jepsen/.

    python3 tests/jepsen/run.py [--seconds 20] [--seed 1] [--netns]

With --netns (root, and `ip netns` available) each daemon runs in its own network
namespace on 10.77.0.0/24, joined by veth pairs to a bridge, and the nemesis can also take
a node's link down: partitions happen in the kernel's network, not only in the library.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("SHIVYA_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.path.join(TARGET, "release", "shivyad")
N, VERTICES = 5, 6


def free_udp_ports(n):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ask(sock_path, line, timeout=1.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return json.loads(out.decode())
    finally:
        s.close()


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Netns:
    """N namespaces joined by veth pairs to one bridge in the root namespace."""

    def __init__(self, tag):
        self.tag = tag
        self.bridge = f"shv{tag}br"
        self.ns = [f"shv{tag}n{i}" for i in range(N)]
        self.veth = [f"shv{tag}v{i}" for i in range(N)]
        self.ips = [f"10.77.0.{i + 1}" for i in range(N)]
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for i in range(N):
            sh("ip", "netns", "add", self.ns[i])
            sh("ip", "link", "add", self.veth[i], "type", "veth", "peer", "name", "eth0", "netns", self.ns[i])
            sh("ip", "link", "set", self.veth[i], "master", self.bridge)
            sh("ip", "link", "set", self.veth[i], "up")
            sh("ip", "netns", "exec", self.ns[i], "ip", "addr", "add", self.ips[i] + "/24", "dev", "eth0")
            sh("ip", "netns", "exec", self.ns[i], "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", self.ns[i], "ip", "link", "set", "lo", "up")

    def link(self, i, up):
        sh("ip", "link", "set", self.veth[i], "up" if up else "down")

    def close(self):
        for i in range(N):
            subprocess.run(["ip", "netns", "del", self.ns[i]], stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "link", "del", self.veth[i]], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", self.bridge], stderr=subprocess.DEVNULL)


class Cluster:
    def __init__(self, out, netns=None):
        self.out = out
        self.netns = netns
        self.ports = [7400 + i for i in range(N)] if netns else free_udp_ports(N)
        self.procs = [None] * N
        self.lock = threading.Lock()
        for i in range(N):
            self.start(i)

    def sock(self, i):
        return os.path.join(self.out, f"n{i}.sock")

    def addr(self, i):
        host = self.netns.ips[i] if self.netns else "127.0.0.1"
        return f"{host}:{self.ports[i]}"

    def start(self, i):
        prefix = ["ip", "netns", "exec", self.netns.ns[i]] if self.netns else []
        bind = ["--bind", self.netns.ips[i]] if self.netns else []
        args = prefix + [BIN, "--port", str(self.ports[i])] + bind + ["--vertices", str(VERTICES), "--vertex", str(i),
                "--no-host-load", "--interval-ms", "200", "--log-level", "warn",
                "--socket", self.sock(i), "--state-file", os.path.join(self.out, f"n{i}.state")]
        for j in range(N):
            if j != i:
                args += ["--peer", self.addr(j)]
        err = open(os.path.join(self.out, f"n{i}.stderr"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 10
        while not os.path.exists(self.sock(i)):
            if time.time() > deadline or self.procs[i].poll() is not None:
                raise RuntimeError(f"daemon {i} did not start")
            time.sleep(0.02)

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def block(self, a, b, on=True):
        if self.alive(a):
            try:
                ask(self.sock(a), f"{'block' if on else 'unblock'} {self.addr(b)}")
            except OSError:
                pass

    def heal(self):
        if self.netns:
            for i in range(N):
                self.netns.link(i, True)
        for a in range(N):
            for b in range(N):
                if a != b:
                    self.block(a, b, on=False)

    def stop(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def writer(cl, rng, stop, history):
    seq = 0
    while not stop.is_set():
        i, v = rng.randrange(N), rng.randrange(VERTICES)
        q = round(rng.uniform(0.001, 100.0), 3)
        seq += 1
        entry = {"seq": seq, "node": i, "vertex": v, "q": q, "t": time.time()}
        try:
            r = ask(cl.sock(i), f"write {v} {q}")
            entry["ok"] = bool(r.get("ok"))
            entry["version"] = r.get("version")
            if not entry["ok"]:
                entry["error"] = r.get("error")
        except (OSError, ValueError) as e:
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
        history.append(entry)
        time.sleep(0.02)


def nemesis(cl, rng, stop, log):
    while not stop.wait(1.0):
        actions = ["partition", "isolate", "heal", "kill"] + (["link-down"] if cl.netns else [])
        action = rng.choice(actions)
        t = time.time()
        if action == "partition":
            group = set(rng.sample(range(N), rng.randrange(1, N)))
            cl.heal()
            for a in range(N):
                for b in range(N):
                    if (a in group) != (b in group):
                        cl.block(a, b)
            log.append({"t": t, "action": "partition", "side": sorted(group)})
        elif action == "isolate":
            x = rng.randrange(N)
            cl.heal()
            for b in range(N):
                if b != x:
                    cl.block(x, b)
                    cl.block(b, x)
            log.append({"t": t, "action": "isolate", "node": x})
        elif action == "link-down":
            x = rng.randrange(N)
            cl.heal()
            cl.netns.link(x, False)
            log.append({"t": t, "action": "link-down", "node": x})
        elif action == "heal":
            cl.heal()
            log.append({"t": t, "action": "heal"})
        else:
            x = rng.randrange(N)
            if cl.alive(x):
                cl.procs[x].send_signal(signal.SIGKILL)
                cl.procs[x].wait()
                log.append({"t": t, "action": "kill", "node": x})
                time.sleep(0.3)
                if os.environ.get("SHIVYA_JEPSEN_FORGET"):
                    # Control experiment: restart without the state file, as a node without
                    # durable storage would. The checker should then find lost writes.
                    try:
                        os.remove(os.path.join(cl.out, f"n{x}.state"))
                    except FileNotFoundError:
                        pass
                cl.start(x)
                log.append({"t": time.time(), "action": "restart", "node": x})


def converged(cl):
    try:
        recs = [json.dumps(ask(cl.sock(i), "records"), sort_keys=True) for i in range(N)]
        stats = [ask(cl.sock(i), "status") for i in range(N)]
    except (OSError, ValueError):
        return False
    views = [(s["routes"], s["queue"]) for s in stats]
    return all(r == recs[0] for r in recs) and all(v == views[0] for v in views)


def depart_for_good(cl, rng, final, log):
    """Last: one daemon killed and not restarted. Its record must stop counting on every
    other node (a death certificate: its version with the top bit, no entries) while they
    keep one record set. Returns what the checker needs."""
    gone = rng.randrange(N)
    origin = final[gone]["status"]["id"]
    cl.procs[gone].send_signal(signal.SIGKILL)
    cl.procs[gone].wait()
    log.append({"t": time.time(), "action": "kill-for-good", "node": gone})
    live = [i for i in range(N) if i != gone]

    def certified(recs):
        return any(r["origin"] == origin and r["version"] >= 2**63 and not r["queue"] and not r["offload"]
                   for r in recs)

    t0, expired, recs = time.time(), None, {}
    while time.time() - t0 < 30:
        try:
            recs = {i: ask(cl.sock(i), "records") for i in live}
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        same = len({json.dumps(r, sort_keys=True) for r in recs.values()}) == 1
        if same and all(certified(r) for r in recs.values()):
            expired = time.time() - t0
            break
        time.sleep(0.1)
    print(f"daemon {gone} killed for good: its record withdrawn on every other node after "
          f"{expired if expired is None else round(expired, 2)} s")
    return {"node": gone, "origin": origin, "expired_after_s": expired, "records": recs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--netns", action="store_true")
    a = ap.parse_args()
    out = os.path.join(TARGET, "jepsen", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    rng = random.Random(a.seed)
    netns = Netns(str(os.getpid() % 10000)) if a.netns else None
    try:
        cl = Cluster(out, netns)
    except Exception:
        if netns:
            netns.close()
        raise
    history, log = [], []
    stop = threading.Event()
    try:
        time.sleep(1.0)
        threads = [threading.Thread(target=writer, args=(cl, random.Random(a.seed + 1), stop, history)),
                   threading.Thread(target=nemesis, args=(cl, rng, stop, log))]
        for t in threads:
            t.start()
        time.sleep(a.seconds)
        stop.set()
        for t in threads:
            t.join()
        for i in range(N):
            if not cl.alive(i):
                cl.start(i)
        # The hardest case last: a write acknowledged, then SIGKILL at once (before any
        # gossip round could replicate it), then a restart.
        x = rng.randrange(N)
        writer_rng = random.Random(a.seed + 2)
        stop.clear()
        v, q = writer_rng.randrange(VERTICES), round(writer_rng.uniform(0.001, 100.0), 3)
        r = ask(cl.sock(x), f"write {v} {q}")
        history.append({"seq": len(history) + 1, "node": x, "vertex": v, "q": q, "t": time.time(),
                        "ok": bool(r.get("ok")), "version": r.get("version")})
        cl.procs[x].send_signal(signal.SIGKILL)
        cl.procs[x].wait()
        log.append({"t": time.time(), "action": "kill-after-write", "node": x})
        if os.environ.get("SHIVYA_JEPSEN_FORGET"):
            os.remove(os.path.join(cl.out, f"n{x}.state"))
        cl.start(x)
        cl.heal()
        log.append({"t": time.time(), "action": "final-heal"})
        t0 = time.time()
        while not converged(cl):
            if time.time() - t0 > 60:
                print("did not converge within 60 s after the final heal", file=sys.stderr)
                break
            time.sleep(0.2)
        print(f"converged {time.time() - t0:.2f} s after the final heal")
        final = {}
        for i in range(N):
            final[i] = {"status": ask(cl.sock(i), "status"), "records": ask(cl.sock(i), "records")}
        departed = depart_for_good(cl, rng, final, log)
    finally:
        cl.stop()
        if netns:
            netns.close()
    with open(os.path.join(out, "history.jsonl"), "w") as f:
        for e in history:
            f.write(json.dumps(e) + "\n")
    with open(os.path.join(out, "nemesis.jsonl"), "w") as f:
        for e in log:
            f.write(json.dumps(e) + "\n")
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(final, f, indent=1)
    with open(os.path.join(out, "departed.json"), "w") as f:
        json.dump(departed, f, indent=1)
    print(f"run saved in {out}{' (network namespaces)' if netns else ''}: {len(history)} writes attempted, "
          f"{sum(e['ok'] for e in history)} acknowledged, {len(log)} nemesis actions "
          f"({sum(e['action'] == 'kill' for e in log)} kills)")
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "check.py"), out])
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
