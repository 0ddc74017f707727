#!/usr/bin/env python3
"""keygate's memory per open session (docs/config.md, "Sessions and revocation").

Opens N idle websockets through keygate in front of tests/node/session_backend.js and reports
keygate's RSS before and after, per socket, for two kinds of session:

  plain     a websocket whose upgrade carried a JWT (Authorization: Bearer): one session with
            its kept header, its identity and one deadline (the token's exp)
  socketio  a Socket.IO websocket (socketio: true route) whose CONNECT carried the JWT: one
            session plus the gate's state and one CONNECT grant

Every session has a deadline (exp in one hour) in the registry's timer set. With --baseline BIN
the same is measured for another keygate build (e.g. one without sessions) and the difference
per socket is what sessions cost.

Usage: bench/sessions_memory.py [--keygate BIN] [--baseline BIN] [-n N] [--kinds plain,socketio]
Needs node + tests/node/node_modules (npm ci), and 2N+100 open files for keygate (each socket
is a client and an upstream connection): N defaults to 10000, or what RLIMIT_NOFILE allows.
Binds 127.0.0.1 only. Prints one JSON line per measurement and a Markdown table.
KG_STDERR=FILE keeps keygate's stderr (process logs) in FILE.

Measured 2026-12-07 (release builds, 9,900 sessions: RLIMIT_NOFILE is 20,000 here), keygate at
this commit over its parent (7c48eff): plain +1,504 B per session (61,485 -> 62,989 B per
websocket), socketio +2,880 B (71,113 -> 73,993 B). What a session holds: the kept credential
(the JWT, ~650 B, in a one-entry HeaderMap or the CONNECT's auth map), its identity, one HashMap
entry (~170 B amortised), one BTreeSet deadline entry (~40 B), a oneshot channel (~100 B); no
task and no timer of its own.
"""

import argparse
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIO = "/api/v1/wss/socket.io"
KID = "bench-k1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(admin, name):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def frame(text):
    """A masked client text frame."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    """One server frame's text (unmasked, unfragmented)."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return exact(n).decode(errors="replace")


def upgrade(addr, target, headers=""):
    s = socket.create_connection(addr)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {target} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{headers}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    return s


def open_session(kind, addr, token):
    if kind == "plain":
        return upgrade(addr, "/ws/plain", f"Authorization: Bearer {token}\r\n")
    s = upgrade(addr, f"{SIO}/?EIO=4&transport=websocket")
    assert read_frame(s).startswith("0{")
    s.sendall(frame('40{"token":"Bearer %s"}' % token))
    ack = read_frame(s)
    assert ack.startswith('40{"sid"'), ack
    return s


def config(port, admin, upstream_port):
    return f"""version: 1
listen: "127.0.0.1:{port}"
admin_listen: "127.0.0.1:{admin}"
upstream: {{ url: "http://127.0.0.1:{upstream_port}" }}
access_log: false
limits: {{ max_connections: 100000 }}
authenticators:
  user:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys: [{{ kid: {KID}, pem_file: "{REPO}/tests/fixtures/rsa.pub" }}]
    require: [sub, exp]
routes:
  - {{ name: socketio, path: "{SIO}/{{*rest}}", socketio: true, auth: [user] }}
  - {{ name: plain_ws, path: /ws/plain, auth: [user] }}
"""


def measure(binary, kind, n, token, backend_port):
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "keygate.yaml")
        with open(path, "w") as f:
            f.write(config(port, admin, backend_port))
        kg = subprocess.Popen([binary, "run", "--config", path], stdout=subprocess.DEVNULL,
                              stderr=open(os.environ.get("KG_STDERR", os.devnull), "w"))
        try:
            addr = ("127.0.0.1", port)
            for _ in range(100):
                try:
                    socket.create_connection(addr).close()
                    break
                except OSError:
                    time.sleep(0.1)
            open_session(kind, addr, token).close()  # warm: one session opened and closed
            time.sleep(1.0)
            rss0 = rss_kib(kg.pid)
            socks, started = [], time.time()
            for _ in range(n):
                socks.append(open_session(kind, addr, token))
            opened_s = time.time() - started
            time.sleep(2.0)
            rss1 = rss_kib(kg.pid)
            try:
                open_now = metric(f"127.0.0.1:{admin}", "keygate_sessions_open{")
            except Exception:  # a build without sessions
                open_now = None
            for s in socks:
                s.close()
            return {"binary": binary, "kind": kind, "n": n, "rss0_kib": rss0, "rss1_kib": rss1,
                    "bytes_per_session": round((rss1 - rss0) * 1024 / n), "sessions_open": open_now,
                    "open_seconds": round(opened_s, 1)}
        finally:
            kg.terminate()
            kg.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keygate", default=os.path.join(REPO, "target", "debug", "keygate"))
    ap.add_argument("--baseline", help="another keygate build to compare with")
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ap.add_argument("-n", type=int, default=min(10000, (limit - 200) // 2))
    ap.add_argument("--kinds", default="plain,socketio")
    a = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    if a.n * 2 + 100 > limit:
        sys.exit(f"-n {a.n} needs {a.n * 2 + 100} open files; the limit is {limit}")
    token = subprocess.run([a.keygate, "token", "jwt", "--key", f"{REPO}/tests/fixtures/rsa.key",
                            "--sub", "bench-user", "--kid", KID, "--ttl", "1h"],
                           check=True, capture_output=True, text=True).stdout.strip()
    backend = subprocess.Popen(["node", f"{REPO}/tests/node/session_backend.js", SIO],
                               stdout=subprocess.PIPE, text=True)
    try:
        backend_port = json.loads(backend.stdout.readline())["port"]
        subprocess.Popen(["cat"], stdin=backend.stdout, stdout=subprocess.DEVNULL)  # drain its events
        rows = []
        for kind in a.kinds.split(","):
            for binary in [a.keygate] + ([a.baseline] if a.baseline else []):
                r = measure(binary, kind, a.n, token, backend_port)
                print(json.dumps(r), flush=True)
                rows.append(r)
        print("\n| build | kind | sessions | RSS before | RSS after | per session |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['binary']} | {r['kind']} | {r['n']:,} | {r['rss0_kib'] / 1024:.1f} MiB | "
                  f"{r['rss1_kib'] / 1024:.1f} MiB | {r['bytes_per_session']:,} B |")
    finally:
        backend.terminate()
        backend.wait()


if __name__ == "__main__":
    main()
