"""Two nginx instances with ngx_http_shivya_module, peered, in front of three HTTP backends
on loopback, one of them 10x slower. Standard library only.

Checks: the slow backend's share of a bounded load falls well below 1/3; both instances'
/shivya_status list each other and come to hold the same records (equal view digests);
under steady traffic, five reloads and a binary upgrade of one instance fail no request
and leave both instances sharing one view; a SIGKILLed worker is respawned and rejoins, failing at most the
requests it held; a 1 000-server upstream balances with no failed request, its status is
complete, valid JSON, its metrics parse and both instances hold one view; with one backend
killed every request still succeeds; `nginx -t` rejects bad directive arguments by name.
"""
import signal
import http.server
import json
import re
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("SHIVYA_TARGET_DIR") or os.path.join(ROOT, "target")
MODULE = os.path.join(TARGET, "nginx", "ngx_http_shivya_module.so")
NGINX = "/usr/sbin/nginx"
FAST_S, SLOW_S = 0.004, 0.040   # the slow backend answers 10x slower
REQUESTS = 3000                 # bounded load, split over both nginx instances
SLOW_SHARE_BOUND = 0.15         # round-robin would give 1/3; see README for why 0.15


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Backend:
    def __init__(self, name, delay):
        self.name, self.delay, self.hits = name, delay, 0
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                time.sleep(backend.delay)
                with backend.lock:
                    backend.hits += 1
                body = backend.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops bursts of connects

            def handle_error(self, request, client_address):
                pass  # a client (nginx) that went away mid-answer, e.g. a killed worker

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


CONF = """
load_module {module};
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    shivya_listen 127.0.0.1:{udp};
    shivya_peer 127.0.0.1:{peer_udp};
    upstream app {{
        shivya;
        {servers}
    }}
    server {{
        listen 127.0.0.1:{http};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
        location = /shivya_status {{ shivya_status; }}
        location = /shivya_metrics {{ shivya_metrics; }}
    }}
}}
"""


def write_conf(d, http_port, udp, peer_udp, backends, extra=""):
    servers = "\n        ".join(f"server 127.0.0.1:{b.port} max_fails=1 fail_timeout=2s;" for b in backends)
    conf = CONF.format(module=MODULE, dir=d, udp=udp, peer_udp=peer_udp, servers=servers, http=http_port)
    conf = conf.replace("shivya_listen", extra + "shivya_listen") if extra else conf
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def status(port):
    return json.loads(get(f"http://127.0.0.1:{port}/shivya_status")[1])


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """A parser for the Prometheus text format (0.0.4), strict enough to fail on anything a
    scraper would reject: every sample is NAME{labels} VALUE, its family has HELP and TYPE
    first, labels are well-formed and no sample repeats. Returns {(name, labels): value}."""
    typed, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in typed, f"TYPE twice: {line}"
            typed[name] = kind
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels = m.group(1), ()
        assert name in typed, f"sample before its TYPE: {line!r}"
        if m.group(3):
            pairs = LABEL.findall(m.group(3))
            assert ",".join(f'{k}="{v}"' for k, v, _ in pairs) == m.group(3), f"bad labels: {line!r}"
            labels = tuple((k, v) for k, v, _ in pairs)
        assert (name, labels) not in samples, f"repeated sample: {line!r}"
        samples[(name, labels)] = float(m.group(4))
    return samples


def wait_for(what, f, deadline=15):
    start = time.time()
    while not f():
        if time.time() - start > deadline:
            raise AssertionError(f"{what}: not reached in {deadline} s")
        time.sleep(0.1)


def check_bad_directives(tmp, backends):
    cases = [
        ('shivya_weight_law "weight / latency";', "shivya_weight_law"),
        ("shivya_listen not-an-address;", "shivya_listen"),
        ("shivya_peer 127.0.0.1;", "shivya_peer"),
        ("shivya_listen 127.0.0.1:70000;", "shivya_listen"),
    ]
    for i, (bad, needle) in enumerate(cases):
        d = os.path.join(tmp, f"bad{i}")
        os.makedirs(d)
        conf = write_conf(d, free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), backends)
        text = open(conf).read()
        text = text.replace("    shivya_listen", "    " + bad + "\n    shivya_listen", 1) if needle != "shivya_listen" else \
            text.replace(text[text.index("    shivya_listen"):text.index("\n", text.index("    shivya_listen"))], "    " + bad)
        open(conf, "w").write(text)
        r = subprocess.run([NGINX, "-t", "-p", d, "-c", conf], capture_output=True, text=True)
        assert r.returncode != 0, f"nginx -t accepted {bad!r}"
        assert needle in r.stderr and "emerg" in r.stderr, r.stderr
        print(f"nginx -t rejects {bad!r}: {r.stderr.strip().splitlines()[0]}")
    # An argument to the bare `shivya` directive is refused by nginx itself, by name.
    d = os.path.join(tmp, "bad-arg")
    os.makedirs(d)
    conf = write_conf(d, free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), backends)
    text = open(conf).read().replace("shivya;", "shivya fast;")
    open(conf, "w").write(text)
    r = subprocess.run([NGINX, "-t", "-p", d, "-c", conf], capture_output=True, text=True)
    assert r.returncode != 0 and '"shivya"' in r.stderr, r.stderr


def children(pid):
    """The pids whose parent is `pid` (nginx workers of a master)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(out)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class Traffic:
    """Steady requests through both instances from a few threads; counts what fails."""

    def __init__(self, ports, threads=4):
        self.ports, self.stop_flag = ports, threading.Event()
        self.ok = self.failed = 0
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True) for k in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, k):
        i = k
        while not self.stop_flag.is_set():
            i += 1
            try:
                code = get(f"http://127.0.0.1:{self.ports[i % 2]}/x", timeout=5)[0]
                good, err = code == 200, f"status {code}"
            except Exception as e:  # connection refused, reset, timeout: all failures
                good, err = False, repr(e)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(err)
            time.sleep(0.002)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        return self.ok, self.failed


SIGNALS_SENT = set()


def send(pid, sig):
    """os.kill, remembering which signals the test exercised (the README's table of nginx
    signals must list exactly these)."""
    SIGNALS_SENT.add(sig.name[3:])
    os.kill(pid, sig)


def readme_table(tag):
    """First-column names (every `backticked` token) of the README table marked
    <!-- operators:TAG -->."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index(f"<!-- operators:{tag} -->")
    end = text.index("<!-- /operators -->", start)
    names = set()
    for line in text[start:end].splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([^`]+)`", first))
    assert names, f"README table {tag} is empty"
    return names


def check_readme_tables(metrics_text):
    """The README's operator tables against the real module: directives against its command
    table, metrics against a real exposition, signals against what this test sent."""
    with open(os.path.join(ROOT, "examples", "nginx", "ngx_http_shivya_module.c")) as f:
        directives = set(re.findall(r'ngx_string\("(shivya[a-z_]*)"\)', f.read()))
    readme = readme_table("nginx-directives")
    assert readme == directives, f"README directives {sorted(readme)} != module {sorted(directives)}"
    families = {line.split(" ")[2] for line in metrics_text.splitlines() if line.startswith("# TYPE ")}
    readme = readme_table("nginx-metrics")
    assert readme == families, f"README metrics {sorted(readme ^ families)} differ from /shivya_metrics"
    readme = readme_table("nginx-signals")
    assert readme == SIGNALS_SENT, f"README signals {sorted(readme)} != exercised {sorted(SIGNALS_SENT)}"
    print(f"README operator tables match: {len(directives)} directives, {len(families)} metrics, "
          f"{len(SIGNALS_SENT)} signals")


def reloads_upgrade_and_a_killed_worker(dirs, http_ports, master):
    """Operator actions on instance 0 under steady traffic; returns instance 0's master."""
    traffic = Traffic(http_ports)
    pidfile = os.path.join(dirs[0], "nginx.pid")
    try:
        for n in range(5):
            old = children(master)
            send(master, signal.SIGHUP)
            wait_for(f"reload {n + 1}: a new worker", lambda: any(w not in old for w in children(master)))
            wait_for(f"reload {n + 1}: the old worker gone", lambda: not any(w in old for w in children(master)))
            wait_for(f"reload {n + 1}: the new worker in the mesh", lambda: status(http_ports[0])["peer_count"] >= 1)
        print(f"5 reloads under traffic: {traffic.ok} requests ok, {traffic.failed} failed")
        # Binary upgrade: USR2 starts a new master (the same binary), WINCH retires the old
        # workers, QUIT the old master.
        send(master, signal.SIGUSR2)
        wait_for("upgrade: a new master", lambda: os.path.exists(pidfile + ".oldbin") and read_pid(pidfile) not in (None, master))
        new_master = read_pid(pidfile)
        wait_for("upgrade: new workers", lambda: len(children(new_master)) >= 1)
        send(master, signal.SIGWINCH)
        # The new master is itself a child of the old one.
        wait_for("upgrade: old workers gone", lambda: children(master) == [new_master])
        send(master, signal.SIGQUIT)
        wait_for("upgrade: old master gone", lambda: not os.path.exists(f"/proc/{master}") or open(f"/proc/{master}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
        wait_for("upgrade: the new generation in the mesh", lambda: status(http_ports[0])["peer_count"] >= 1)
        ok, failed = traffic.ok, traffic.failed
        print(f"binary upgrade under traffic: {ok} requests ok in all, {failed} failed")
        assert failed == 0, f"{failed} requests failed across reloads and the upgrade: {traffic.errors[:5]}"
        # A worker killed outright: the master respawns it and it rejoins; at most the
        # requests it held fail (4 client threads: at most 4 in flight).
        victim = children(new_master)[0]
        send(victim, signal.SIGKILL)
        wait_for("a respawned worker", lambda: any(w != victim for w in children(new_master)))
        wait_for("the respawned worker in the mesh", lambda: status(http_ports[0])["peer_count"] >= 1)
        time.sleep(1.0)
    finally:
        ok, failed = traffic.stop()
    print(f"worker SIGKILL under traffic: {ok} requests ok in all, {failed} failed (at most 4 allowed)")
    assert failed <= 4, f"{failed} requests failed: {traffic.errors[:5]}"
    # Both instances share one view again.
    wait_for("one view on both instances after the operator actions",
             lambda: same_view(http_ports), deadline=20)
    return new_master


def same_view(http_ports):
    """Both instances hold the same two records (equal view digests)."""
    a, b = status(http_ports[0]), status(http_ports[1])
    return a["records"] == 2 == b["records"] and a["view"] == b["view"]


class ManyBackends:
    """`n` HTTP backends on `n` loopback ports, all served by one thread (selectors):
    each answers GET with its name after `delay` seconds, keeping connections alive."""

    def __init__(self, n, delay):
        import heapq
        import selectors
        self.sel = selectors.DefaultSelector()
        self.delay, self.heapq = delay, heapq
        self.ports, self.stopped = [], threading.Event()
        for k in range(n):
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", 0))
            ls.listen(64)
            ls.setblocking(False)
            self.sel.register(ls, selectors.EVENT_READ, ("listen", k))
            self.ports.append(ls.getsockname()[1])
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import selectors
        due, seq = [], 0  # (when, seq, conn, bytes) answers waiting for their delay
        bufs = {}
        while not self.stopped.is_set():
            timeout = 0.05 if not due else max(0.0, min(0.05, due[0][0] - time.monotonic()))
            for key, _ in self.sel.select(timeout):
                kind, k = key.data
                if kind == "listen":
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    bufs[c] = b""
                    self.sel.register(c, selectors.EVENT_READ, ("conn", k))
                    continue
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(c)
                    bufs.pop(c, None)
                    c.close()
                    continue
                bufs[c] += data
                while b"\r\n\r\n" in bufs[c]:
                    _, bufs[c] = bufs[c].split(b"\r\n\r\n", 1)
                    body = f"b{k}".encode()
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    seq += 1
                    self.heapq.heappush(due, (time.monotonic() + self.delay, seq, c, answer))
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, c, answer = self.heapq.heappop(due)
                if c in bufs:
                    try:
                        c.sendall(answer)
                    except OSError:
                        pass

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def big_upstream(tmp, n=1000):
    """Two peered instances with a 1 000-server upstream (the default topology's ring with
    chords; a balancer's record of up to 1 000 loads travels in CHUNK parts): under load
    through one instance no request fails, picks reach hundreds of servers, /shivya_status
    is complete, valid JSON with every server, /shivya_metrics parses, and the other
    instance comes to hold the same records (equal views)."""
    many = ManyBackends(n, 0.05)
    d = [os.path.join(tmp, f"big{i}") for i in range(2)]
    http_ports = [free_port(), free_port()]
    udp = [free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)]
    procs = []
    try:
        for i in range(2):
            os.makedirs(d[i])
            servers = "\n        ".join(f"server 127.0.0.1:{port};" for port in many.ports)
            conf = CONF.format(module=MODULE, dir=d[i], udp=udp[i], peer_udp=udp[1 - i], servers=servers,
                               http=http_ports[i])
            path = os.path.join(d[i], "nginx.conf")
            with open(path, "w") as f:
                f.write(conf)
            procs.append(subprocess.Popen([NGINX, "-p", d[i], "-c", path], stderr=subprocess.DEVNULL))
        for port in http_ports:
            wait_for(f"nginx with {n} servers up", lambda: _up(port))
        stop = threading.Event()
        codes, names = [], set()

        def load():
            while not stop.is_set():
                try:
                    code, body = get(f"http://127.0.0.1:{http_ports[0]}/x")
                except Exception as e:  # a failed request is counted, never lost
                    code, body = repr(e), ""
                codes.append(code)
                names.add(body)
        loaders = [threading.Thread(target=load) for _ in range(48)]
        for t in loaders:
            t.start()

        def status_of(i):
            body = get(f"http://127.0.0.1:{http_ports[i]}/shivya_status")[1]
            return body, json.loads(body)  # raises on a cut document
        try:
            time.sleep(3)  # load for a while: picks spread, records of hundreds of loads
            body, doc = status_of(0)
        finally:
            stop.set()
            for t in loaders:
                t.join()
        assert codes and all(c == 200 for c in codes), sorted(set(codes))
        assert len(doc["servers"]) == n, len(doc["servers"])
        assert abs(sum(s["share"] for s in doc["servers"]) - 1.0) < 0.01
        assert len(names) > min(200, n // 2), f"picks reached only {len(names)} servers"
        # The other instance carried no traffic, so it holds one record: the loaded one's.
        wait_for("the other instance holds the same records",
                 lambda: status_of(1)[1]["view"] == status_of(0)[1]["view"] and status_of(1)[1]["records"] == 1)
        print(f"{n}-server upstream: {len(codes)} requests, none failed, {len(names)} servers picked; "
              f"/shivya_status is {len(body)} bytes of valid JSON; both instances hold one view")
        m = parse_metrics(get(f"http://127.0.0.1:{http_ports[0]}/shivya_metrics")[1])
        shares = [k for k in m if k[0] == "shivya_server_share"]
        assert len(shares) == n, len(shares)
        print(f"{n}-server upstream: /shivya_metrics parses, {len(m)} samples")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        many.stop()


def free_udp_pair():
    """A UDP port p with p + 1 free too (worker 1 of an instance binds port + 1)."""
    for _ in range(100):
        p = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise AssertionError("no pair of free UDP ports")


TWO_WORKERS_TOLERANCE = 0.05    # slow share with 2 workers vs 1, absolute


def two_workers_per_instance(tmp, backends, one_worker_share):
    """worker_processes 2 in both instances: every worker of both is one mesh. The same
    bounded load must give the slow backend a share within TWO_WORKERS_TOLERANCE of the
    one-worker run, and every worker must hold all four workers' records (so each counts
    the others' requests in flight)."""
    http_ports = [free_port(), free_port()]
    udp = [free_udp_pair(), free_udp_pair()]
    procs = []
    hits0 = [b.hits for b in backends]
    try:
        for i in range(2):
            d = os.path.join(tmp, f"workers{i}")
            os.makedirs(d)
            conf = write_conf(d, http_ports[i], udp[i], udp[1 - i], backends)
            text = open(conf).read().replace("worker_processes 1;", "worker_processes 2;")
            open(conf, "w").write(text)
            procs.append(subprocess.Popen([NGINX, "-p", d, "-c", conf], stderr=subprocess.DEVNULL))
        for port in http_ports:
            wait_for("nginx with two workers up", lambda port=port: _up(port))

        def one(i):
            return get(f"http://127.0.0.1:{http_ports[i % 2]}/x")[0]
        with ThreadPoolExecutor(max_workers=24) as ex:
            codes = list(ex.map(one, range(REQUESTS)))
        assert all(c == 200 for c in codes)
        hits = [b.hits - h for b, h in zip(backends, hits0)]
        share = hits[1] / sum(hits)
        print(f"two workers per instance: slow share {share:.3f} vs {one_worker_share:.3f} with one "
              f"(tolerance {TWO_WORKERS_TOLERANCE})")
        assert sum(hits) == REQUESTS
        assert share < SLOW_SHARE_BOUND and abs(share - one_worker_share) <= TWO_WORKERS_TOLERANCE, share
        # Each worker of each instance holds the records of all four workers.
        seen = {}

        def all_workers_hold_four():
            for port in http_ports:
                s = status(port)
                if s["records"] == 4 and s["peer_count"] >= 3:
                    seen[(port, s["worker"])] = True
            return len(seen) == 4
        wait_for("every worker holds the four workers' records", all_workers_hold_four)
        print("two workers per instance: every worker of both instances holds all four records")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def main():
    tmp = tempfile.mkdtemp(prefix="shivya-nginx-")
    backends = [Backend("fast-a", FAST_S), Backend("slow", SLOW_S), Backend("fast-b", FAST_S)]
    check_bad_directives(tmp, backends)
    big_upstream(tmp)

    http_ports = [free_port(), free_port()]
    udp = [free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)]
    procs, dirs, masters = [], [], []
    try:
        for i in range(2):
            d = os.path.join(tmp, f"nginx{i}")
            os.makedirs(d)
            dirs.append(d)
            conf = write_conf(d, http_ports[i], udp[i], udp[1 - i], backends)
            t = subprocess.run([NGINX, "-t", "-p", d, "-c", conf], capture_output=True, text=True)
            assert t.returncode == 0, t.stderr
            if i == 0:
                # Instance 0 runs as a daemon, as in production: nginx ignores USR2 (binary
                # upgrade) in a master whose parent is still the one that started it.
                text = open(conf).read().replace("daemon off;", "daemon on;")
                open(conf, "w").write(text)
                subprocess.run([NGINX, "-p", d, "-c", conf], check=True, stderr=subprocess.DEVNULL)
                wait_for("the daemon's pid file", lambda: read_pid(os.path.join(d, "nginx.pid")) is not None)
                masters.append(read_pid(os.path.join(d, "nginx.pid")))
            else:
                procs.append(subprocess.Popen([NGINX, "-p", d, "-c", conf], stderr=subprocess.DEVNULL))
        for p in http_ports:
            wait_for("nginx up", lambda p=p: _up(p))
        wait_for("nginx instances see each other", lambda: all(status(p)["peer_count"] >= 1 for p in http_ports))

        # Bounded load through both instances.
        def one(i):
            return get(f"http://127.0.0.1:{http_ports[i % 2]}/x")[0]

        t0 = time.time()
        with ThreadPoolExecutor(max_workers=24) as ex:
            codes = list(ex.map(one, range(REQUESTS)))
        elapsed = time.time() - t0
        assert all(c == 200 for c in codes)
        total = sum(b.hits for b in backends)
        share = backends[1].hits / total
        print(f"{REQUESTS} requests in {elapsed:.1f} s; hits "
              f"{[(b.name, b.hits) for b in backends]}; slow share {share:.3f} (bound {SLOW_SHARE_BOUND})")
        assert total == REQUESTS
        assert share < SLOW_SHARE_BOUND, f"slow backend share {share:.3f}"

        # Both instances come to hold the same records once the load is over.
        wait_for("one view on both instances", lambda: same_view(http_ports))
        s0, s1 = status(http_ports[0]), status(http_ports[1])
        assert f"127.0.0.1:{udp[1]}" in s0["peers"] and f"127.0.0.1:{udp[0]}" in s1["peers"]
        print("view digest on both instances:", s0["view"])
        # The Prometheus exposition agrees with the JSON status.
        m = parse_metrics(get(f"http://127.0.0.1:{http_ports[0]}/shivya_metrics")[1])
        assert m[("shivya_peers", (("worker", "0"),))] == s0["peer_count"] >= 1
        assert m[("shivya_records", (("worker", "0"),))] == 2
        for srv in s0["servers"]:
            key = (("worker", "0"), ("server", srv["name"]))
            assert abs(m[("shivya_server_share", key)] - srv["share"]) < 1e-3, (srv, m)
        assert m[("shivya_frames_total", (("worker", "0"), ("direction", "in")))] > 0
        reasons = {dict(k[1])["reason"] for k in m if k[0] == "shivya_dropped_frames_total"}
        assert len(reasons) == 19 and {"bad_magic", "bad_signature", "blocked"} <= reasons, reasons
        # Information age: the other instance's record, changed within the last minute.
        age = m[("shivya_record_age_max_seconds", (("worker", "0"),))]
        assert 0 <= m[("shivya_record_age_mean_seconds", (("worker", "0"),))] <= age < 60, m
        print(f"/shivya_metrics: {len(m)} samples, Prometheus text format")
        print("shares:", [(s["name"], s["share"]) for s in s0["servers"]])
        two_workers_per_instance(tmp, backends, share)

        masters.append(reloads_upgrade_and_a_killed_worker(dirs, http_ports, masters[0]))
        check_readme_tables(get(f"http://127.0.0.1:{http_ports[0]}/shivya_metrics")[1])

        # Kill one backend: requests keep succeeding, nothing hangs.
        backends[0].stop()
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=8) as ex:
            codes = list(ex.map(one, range(300)))
        assert all(c == 200 for c in codes), codes
        print(f"with one backend down: 300/300 requests succeeded in {time.time() - t0:.1f} s")
    finally:
        # Every master that may still run: those we know, and those only the pid files
        # name (a binary upgrade that failed half-way leaves a daemonized new master).
        for d in dirs:
            for f in ("nginx.pid", "nginx.pid.oldbin"):
                pid = read_pid(os.path.join(d, f))
                if pid is not None and pid not in masters:
                    masters.append(pid)
        for pid in masters:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for b in backends[1:]:
            b.stop()
    print("nginx test: ok")


def _up(port):
    try:
        get(f"http://127.0.0.1:{port}/shivya_status", timeout=1)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
