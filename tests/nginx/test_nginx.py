"""Two nginx instances with ngx_http_shivya_module, peered, in front of three HTTP backends
on loopback, one of them 10x slower. Standard library only.

Checks: the slow backend's share of a bounded load falls well below 1/3; both instances'
/shivya_status list each other and settle to identical routes; with one backend killed
every request still succeeds; `nginx -t` rejects bad directive arguments by name.
"""
import http.server
import json
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


def wait_for(what, f, deadline=15):
    start = time.time()
    while not f():
        if time.time() - start > deadline:
            raise AssertionError(f"{what}: not reached in {deadline} s")
        time.sleep(0.1)


def check_bad_directives(tmp, backends):
    cases = [
        ("shivya_listen not-an-address;", "shivya_listen"),
        ("shivya_peer 127.0.0.1;", "shivya_peer"),
        ("shivya_listen 127.0.0.1:70000;", "shivya_listen"),
    ]
    for i, (bad, needle) in enumerate(cases):
        d = os.path.join(tmp, f"bad{i}")
        os.makedirs(d)
        conf = write_conf(d, free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), backends)
        text = open(conf).read()
        text = text.replace("    shivya_listen", "    " + bad + "\n    shivya_listen", 1) if "peer" in needle else \
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


def main():
    tmp = tempfile.mkdtemp(prefix="shivya-nginx-")
    backends = [Backend("fast-a", FAST_S), Backend("slow", SLOW_S), Backend("fast-b", FAST_S)]
    check_bad_directives(tmp, backends)

    http_ports = [free_port(), free_port()]
    udp = [free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)]
    procs = []
    try:
        for i in range(2):
            d = os.path.join(tmp, f"nginx{i}")
            os.makedirs(d)
            conf = write_conf(d, http_ports[i], udp[i], udp[1 - i], backends)
            t = subprocess.run([NGINX, "-t", "-p", d, "-c", conf], capture_output=True, text=True)
            assert t.returncode == 0, t.stderr
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

        # Both instances settle to the same routes once the load is over.
        def same():
            a, b = status(http_ports[0]), status(http_ports[1])
            return a["routes"] and a["routes"] == b["routes"] and a["records"] == 2 == b["records"]
        wait_for("identical settled routes on both instances", same)
        s0, s1 = status(http_ports[0]), status(http_ports[1])
        assert f"127.0.0.1:{udp[1]}" in s0["peers"] and f"127.0.0.1:{udp[0]}" in s1["peers"]
        print("routes on both instances:", s0["routes"])
        print("weights:", [(s["name"], s["weight"]) for s in s0["servers"]])

        # Kill one backend: requests keep succeeding, nothing hangs.
        backends[0].stop()
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=8) as ex:
            codes = list(ex.map(one, range(300)))
        assert all(c == 200 for c in codes), codes
        print(f"with one backend down: 300/300 requests succeeded in {time.time() - t0:.1f} s")
    finally:
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
