#!/usr/bin/env python3
"""keygate benchmark orchestrator (run it through `bench/run`, which installs what it needs).

Modes:
  (default)   throughput: every row, correctness first, then wrk -t1 -cC, warm-up, measured run,
              interleaved repetitions, medians; markdown table + PNG chart.
  --latency   p99 added over direct at half of keygate's peak rate (oha, open-loop, latency
              correction), per row.
  --memory    keygate RSS after 100k distinct tokens cached, and RSS of every proxy after 10k idle
              keep-alive connections.

See BENCHMARKS.md for the method and what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
# The cargo profile bench/run built (dist: what the Dockerfile ships).
PROFILE = os.environ.get("BENCH_PROFILE") or "dist"
KEYGATE = TARGET / PROFILE / "keygate"
BARE = TARGET / PROFILE / "examples" / "bare_pingora"
WRK_LUA = BENCH / "wrk.lua"
RSA_KEY = REPO / "tests" / "fixtures" / "rsa.key"
RSA_PUB = REPO / "tests" / "fixtures" / "rsa.pub"
EC_KEY = REPO / "tests" / "fixtures" / "ec256.key"
RSA_OTHER_KEY = REPO / "tests" / "fixtures" / "rsa_other.key"

HOST = "127.0.0.1"
# Ports: --port-base (default 24080) + 0 (upstream), + 20 (proxy under test), + 30 (keygate admin),
# + 40 (redis-server, for the quota row with shared_state).
UPSTREAM_PORT = 24080
PROXY_PORT = 24100
ADMIN_PORT = 24110
REDIS_PORT = 24120
# A quota no run can use up: the rows measure what counting costs, not refusals (wrk counts any
# 429 as an error).
QUOTA = "{ requests: 1000000000, per_seconds: 3600, by: credential }"

HMAC_SECRET = "bench-hmac-secret-0123456789abcdef"
CLIENT_KEY, CLIENT_SECRET = "ck_bench_1", "bench-client-secret-value"
API_KEY = "ak_bench_0123456789abcdef"
DISTINCT = 10_000
MEMORY_TOKENS = 100_000
IDLE_CONNS = 10_000
TOKEN_TTL = 24 * 3600

HZ = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    label: str
    server: str  # direct | nginx | haproxy | haproxy-jwt | pingora | keygate
    what: str
    auth: str | None = None  # keygate: None (anonymous) | jwt | hmac | client_secret | api_key
    cache: int = 100_000  # keygate token_cache.max_entries
    distinct: bool = False  # cycle DISTINCT tokens (wrk.lua)
    access_log: bool = True  # keygate access log
    family: str = "reference"
    quota: str | None = None  # keygate: None | local (a route quota) | redis (+ shared_state)
    extra: str | None = None  # keygate, with jwt: None | assertion | allow_if | bind_json (issue 19)


ROWS = [
    Row("direct", "direct (no proxy)", "direct", "wrk straight to the nginx upstream: the load core's ceiling"),
    Row("nginx", "nginx proxy_pass", "nginx", "nginx 1 worker, proxy_pass to the upstream with a keep-alive pool"),
    Row("haproxy", "HAProxy passthrough", "haproxy", "HAProxy nbthread 1, http-reuse always"),
    Row("haproxy-jwt", "HAProxy jwt_verify, same token", "haproxy-jwt",
        "HAProxy jwt_verify RS256 (+ alg, exp check, sub -> x-auth-user-id), one token"),
    Row("haproxy-jwt-distinct", "HAProxy jwt_verify, 10k tokens", "haproxy-jwt",
        "as above, cycling 10k distinct tokens (HAProxy has no cache: same cost)", distinct=True),
    Row("pingora", "bare pingora", "pingora",
        "bench/bare_pingora.rs: a ProxyHttp whose upstream_peer returns the upstream; the framework floor"),
    Row("keygate", "keygate passthrough", "keygate",
        "keygate, one anonymous catch-all route (identity headers stripped, access log on)", family="keygate"),
    Row("keygate-jwt", "keygate JWT, same token", "keygate",
        "jwt RS256 authenticator, one token: verified once, then cache hits", auth="jwt", family="keygate"),
    Row("keygate-jwt-distinct", "keygate JWT, 10k tokens", "keygate",
        "jwt, cycling 10k distinct tokens (all cached after warm-up)", auth="jwt", distinct=True, family="keygate"),
    Row("keygate-jwt-nocache", "keygate JWT, cache off", "keygate",
        "jwt, one token, token_cache.max_entries: 0 (RS256 verify every request)", auth="jwt", cache=0,
        family="keygate"),
    Row("keygate-hmac", "keygate hmac_token", "keygate",
        "hmac_token: HMAC-SHA256(secret, x-user-id) == x-user-token", auth="hmac", family="keygate"),
    Row("keygate-client-secret", "keygate client_secret", "keygate",
        "client_secret: x-client-key + x-client-secret (SHA-256 compare)", auth="client_secret", family="keygate"),
    Row("keygate-api-key", "keygate api_key", "keygate",
        "api_key: Authorization: Bearer <key>", auth="api_key", family="keygate"),
    Row("keygate-quota-local", "keygate api_key + quota (per replica)", "keygate",
        "api_key with a route quota, no shared_state: one in-process counter per request (compare with "
        "keygate-api-key)", auth="api_key", quota="local", family="keygate"),
    Row("keygate-quota-redis", "keygate api_key + quota (Redis)", "keygate",
        "api_key with a route quota shared through redis-server on loopback (load core): one script "
        "call (EVALSHA) per request (compare with keygate-api-key)", auth="api_key", quota="redis",
        family="keygate"),
    Row("keygate-assertion", "keygate JWT + signed assertion", "keygate",
        "keygate-jwt with identity.assertion: an ES256 JWT signed per request for the backend "
        "(compare with keygate-jwt)", auth="jwt", extra="assertion", family="keygate"),
    Row("keygate-allow-if", "keygate JWT + allow_if", "keygate",
        "keygate-jwt with a CEL allow_if on the claims and the identity (compare with keygate-jwt)",
        auth="jwt", extra="allow_if", family="keygate"),
    Row("keygate-bind-json", "keygate JWT + bind_json", "keygate",
        "keygate-jwt, POST with a 60-byte JSON body read before deciding and bind_json on /user_id "
        "(compare with keygate-jwt)", auth="jwt", extra="bind_json", family="keygate"),
    Row("keygate-log-off", "keygate passthrough, access log off", "keygate",
        "keygate passthrough with the access log off (compare with `keygate`, log on)", access_log=False,
        family="keygate"),
]
ROW_BY_ID = {r.id: r for r in ROWS}


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


class Proc:
    """A process (group) started by the harness; stopped by its own process group id."""

    def __init__(self, name, argv, cpu, log_path=None, env=None, stop_signal=signal.SIGTERM):
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL
        full = ["taskset", "-c", str(cpu), *map(str, argv)]
        self.p = subprocess.Popen(full, stdout=out, stderr=out if log_path else subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        if log_path:
            out.close()
        RUNNING.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.p.poll() is not None:
            return
        try:
            os.killpg(self.p.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=5)
        # the group may have children left (nginx workers)
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def tail(self, n=20):
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        lines = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


RUNNING: list[Proc] = []


def stop_all():
    for p in list(RUNNING):
        p.stop()


def port_open(port, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, proc: Proc | None = None, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited at start-up:\n{proc.tail()}")
        if port_open(port):
            return
        time.sleep(0.02)
    raise BenchError(f"port {port} did not open" + (f"; {proc.name}:\n{proc.tail()}" if proc else ""))


def wait_port_free(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not port_open(port):
            return
        time.sleep(0.05)
    raise BenchError(f"port {port} still in use (another process listens on it?)")


BIND_JSON_BODY = '{"user_id":"u1","events":[{"type":"seen","id":"n-0001"}]}'


def http_get(port, path="/bench", headers=None, timeout=5.0, body=None):
    """(status, body) of one GET, or of a POST when `body` is given."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET" if body is None else "POST", path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def http_get_headers(port, path="/bench", headers=None, timeout=5.0):
    """(status, {lower-case header name: value}) of one GET."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def cmd_out(argv, **kw):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


# --------------------------------------------------------------------------------------------
# CPU accounting (/proc)
# --------------------------------------------------------------------------------------------


def read_cpu_stat():
    """Per core: (busy ticks, total ticks). busy = user+nice+system+irq+softirq+steal."""
    cores = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                v = list(map(int, parts[1:9]))
                user, nice, system, idle, iowait, irq, softirq, steal = v
                busy = user + nice + system + irq + softirq + steal
                cores[int(parts[0][3:])] = (busy, busy + idle + iowait)
    return cores


def read_procs():
    """pid -> (comm, ppid, cpu ticks utime+stime, starttime ticks)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        lp, rp = s.find("("), s.rfind(")")
        comm = s[lp + 1:rp]
        rest = s[rp + 2:].split()
        out[int(d)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19]))
    return out


def harness_pids(procs, root=None):
    """The harness and all its descendants (wrk, upstream, the proxy under test)."""
    root = root or os.getpid()
    children = {}
    for pid, (_, ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), [root]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        stack.extend(children.get(p, []))
    return seen


def is_kthread(pid, procs):
    return pid == 2 or procs[pid][1] == 2


class CpuWindow:
    """Samples /proc during a measured run: CPU per core, and CPU used by processes that are not
    part of the run ("foreign", core-seconds per second). foreign = all busy CPU time - harness
    processes - kernel threads (so short-lived foreign processes, e.g. compiler jobs, count too);
    the per-process samples name the top foreign processes."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.stat0 = read_cpu_stat()
        self.procs0 = read_procs()
        self.foreign_named = {}  # comm -> ticks (from per-process samples)
        self.last = self.procs0
        self.boot_ticks0 = self._uptime_ticks()

    @staticmethod
    def _uptime_ticks():
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) * HZ

    def sample(self):
        procs = read_procs()
        mine = harness_pids(procs)
        for pid, (comm, _, ticks, start) in procs.items():
            if pid in mine or is_kthread(pid, procs):
                continue
            if pid in self.last:
                d = ticks - self.last[pid][2]
            elif start >= self.boot_ticks0:
                d = ticks  # started inside the window
            else:
                d = 0
            if d > 0:
                self.foreign_named[comm] = self.foreign_named.get(comm, 0) + d
        self.last = procs

    def finish(self):
        self.sample()
        t1 = time.monotonic()
        stat1 = read_cpu_stat()
        procs1 = self.last
        secs = t1 - self.t0
        per_core = {}
        total_busy = 0
        for c, (b1, tot1) in stat1.items():
            b0, tot0 = self.stat0.get(c, (b1, tot1))
            per_core[c] = 100.0 * (b1 - b0) / max(1, tot1 - tot0)
            total_busy += b1 - b0
        mine = harness_pids(procs1) | harness_pids(self.procs0)
        harness = kernel = 0
        for pid, (comm, _, ticks, start) in procs1.items():
            before = self.procs0.get(pid)
            d = ticks - before[2] if before else (ticks if start >= self.boot_ticks0 else 0)
            if pid in mine:
                harness += d
            elif is_kthread(pid, procs1):
                kernel += d
        residual = max(0, total_busy - harness - kernel)
        named = max(0, sum(self.foreign_named.values()))
        top = sorted(self.foreign_named.items(), key=lambda kv: -kv[1])[:4]
        return {
            "seconds": secs,
            "cpu_per_core": per_core,
            "foreign_cores": max(residual, named) / HZ / secs,
            "foreign_residual_cores": residual / HZ / secs,
            "foreign_named_cores": named / HZ / secs,
            "foreign_top": [(c, round(t / HZ / secs, 3)) for c, t in top],
        }


def foreign_now(seconds=1.0):
    w = CpuWindow()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        w.sample()
    return w.finish()


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def keygate_token(sub, kid="k1", ttl="24h", key=RSA_KEY, claims=()):
    argv = [KEYGATE, "token", "jwt", "--key", key, "--sub", sub, "--ttl", ttl]
    if kid:
        argv += ["--kid", kid]
    for c in claims:
        argv += ["--claim", c]
    return subprocess.run(list(map(str, argv)), check=True, capture_output=True, text=True).stdout.strip()


def _sign_chunk(args):
    pem, start, count, now = args
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_private_key(pem, password=None)
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}, separators=(",", ":")).encode())
    out = []
    for i in range(start, start + count):
        claims = {"sub": f"u{i}", "iat": now, "exp": now + TOKEN_TTL}
        signing_input = header + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        out.append(signing_input + "." + b64url(sig))
    return out


def distinct_tokens(work: Path, n: int) -> Path:
    """A file of n distinct RS256 tokens (sub u0..u{n-1}, kid k1), reused while < 12 h old."""
    path = work / f"tokens-{n}.txt"
    if path.exists() and time.time() - path.stat().st_mtime < TOKEN_TTL / 2:
        return path
    log(f"signing {n} distinct RS256 tokens (python cryptography, 2 processes) ...")
    from concurrent.futures import ProcessPoolExecutor

    pem = RSA_KEY.read_bytes()
    now = int(time.time())
    chunk = 2000
    jobs = [(pem, s, min(chunk, n - s), now) for s in range(0, n, chunk)]
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))  # the workers may use every core
    try:
        with ProcessPoolExecutor(max_workers=2) as ex:
            tokens = [t for part in ex.map(_sign_chunk, jobs) for t in part]
    finally:
        os.sched_setaffinity(0, pinned)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(tokens) + "\n")
    tmp.rename(path)
    return path


def hmac_token(user_id: str, secret: str = HMAC_SECRET) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def tamper(token: str) -> str:
    """The same token with one signature character changed (middle of the signature)."""
    head, sig = token.rsplit(".", 1)
    i = len(sig) // 2
    return head + "." + sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]


@dataclass
class Creds:
    jwt: str
    jwt_u2: str
    jwt_bad_sig: str
    jwt_expired: str
    jwt_other_key: str
    distinct_file: Path
    distinct_sample: list  # (index, token)


def make_creds(work: Path, n_distinct=DISTINCT) -> Creds:
    jwt = keygate_token("u1")
    path = distinct_tokens(work, n_distinct)
    lines = path.read_text().split()
    idx = sorted({0, 1, len(lines) - 1, random.randrange(len(lines)), random.randrange(len(lines))})
    # keygate's own HMAC must agree with the one the harness computes
    kg = subprocess.run([str(KEYGATE), "token", "hmac", "--user-id", "u1"], capture_output=True, text=True,
                        env={**os.environ, "KEYGATE_HMAC_SECRET": HMAC_SECRET}).stdout.strip()
    if kg != hmac_token("u1"):
        raise BenchError(f"keygate token hmac gives {kg!r}, harness computes {hmac_token('u1')!r}")
    return Creds(
        jwt=jwt,
        jwt_u2=keygate_token("u2"),
        jwt_bad_sig=tamper(jwt),
        jwt_expired=keygate_token("u1", claims=["exp=1000", "iat=900"]),
        jwt_other_key=keygate_token("u1", key=RSA_OTHER_KEY),
        distinct_file=path,
        distinct_sample=[(i, lines[i]) for i in idx],
    )


def row_headers(row: Row, c: Creds) -> dict:
    """Headers of a valid request for a non-distinct row."""
    if row.server == "haproxy-jwt" or row.auth == "jwt":
        return {"Authorization": f"Bearer {c.jwt}"}
    if row.auth == "hmac":
        return {"x-user-id": "u1", "x-user-token": hmac_token("u1")}
    if row.auth == "client_secret":
        return {"x-client-key": CLIENT_KEY, "x-client-secret": CLIENT_SECRET}
    if row.auth == "api_key":
        return {"Authorization": f"Bearer {API_KEY}"}
    return {}


def expected_body(row: Row, uid="u1") -> str:
    """What the upstream answers for a valid request of this row."""
    if row.server == "haproxy-jwt":
        return f"uid={uid} cred=\n"  # HAProxy forwards the sub only
    if row.auth in ("jwt", "hmac"):
        return f"uid={uid} cred={{cred}}\n"  # {cred}: filled in by check_row
    if row.auth in ("client_secret", "api_key"):
        return "uid= cred={cred}\n"  # an application identity: no user id
    return "uid= cred=\n"


def bad_requests(row: Row, c: Creds) -> list:
    """(what, headers) pairs that must be refused with 401."""
    if row.server == "haproxy-jwt" or row.auth == "jwt":
        return [
            ("no credential", {}),
            ("tampered signature", {"Authorization": f"Bearer {c.jwt_bad_sig}"}),
            ("expired", {"Authorization": f"Bearer {c.jwt_expired}"}),
            ("signed by another key", {"Authorization": f"Bearer {c.jwt_other_key}"}),
        ]
    if row.auth == "hmac":
        return [
            ("no credential", {}),
            ("token of another user", {"x-user-id": "u1", "x-user-token": hmac_token("u2")}),
            ("wrong secret", {"x-user-id": "u1", "x-user-token": hmac_token("u1", "other-secret")}),
        ]
    if row.auth == "client_secret":
        return [
            ("no credential", {}),
            ("wrong secret", {"x-client-key": CLIENT_KEY, "x-client-secret": "nope"}),
            ("unknown key", {"x-client-key": "ck_unknown", "x-client-secret": CLIENT_SECRET}),
        ]
    if row.auth == "api_key":
        return [("no credential", {}), ("wrong key", {"Authorization": "Bearer ak_wrong"})]
    return []


def refused_by_extra(row: Row, c: Creds) -> list:
    """(what, headers, body, status) that the row's issue-19 feature must refuse."""
    if row.extra == "allow_if":
        return [("valid token of u2 (allow_if false) -> 403", {"Authorization": f"Bearer {c.jwt_u2}"}, None, 403)]
    if row.extra == "bind_json":
        auth = {"Authorization": f"Bearer {c.jwt}", "Content-Type": "application/json"}
        return [("body naming u2 -> 403", auth, BIND_JSON_BODY.replace('"u1"', '"u2"'), 403),
                ("body not JSON -> 400", auth, "user_id=u1", 400)]
    return []


# --------------------------------------------------------------------------------------------
# Server configs
# --------------------------------------------------------------------------------------------

UPSTREAM_BODY = "uid=$http_x_auth_user_id cred=$http_x_auth_credential\\n"


def nginx_conf(work: Path, name: str, server_block: str, extra_http: str = "") -> Path:
    d = work / name
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""# generated by bench/bench.py
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[0]};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{extra_http}
    server {{
{server_block}
    }}
}}
""")
    return conf


def start_upstream(work: Path, cpu: int) -> Proc:
    wait_port_free(UPSTREAM_PORT)
    conf = nginx_conf(work, "upstream", f"""        listen {HOST}:{UPSTREAM_PORT} backlog=4096;
        location / {{ return 200 "{UPSTREAM_BODY}"; }}""")
    p = Proc("upstream nginx", ["nginx", "-e", work / "upstream" / "error.log", "-c", conf], cpu,
             log_path=work / "upstream" / "stderr.log", stop_signal=signal.SIGTERM)
    wait_port(UPSTREAM_PORT, p)
    return p


def haproxy_maxconn(nofile):
    """HAProxy reserves 2 fds per connection (client + server side) and refuses to start when
    maxconn does not fit the fd limit."""
    return min(30000, (nofile - 200) // 2)


def haproxy_conf(work: Path, jwt: bool, idle_timeout="60s", nofile=65536, upstream_port=None) -> Path:
    maxconn = haproxy_maxconn(nofile)
    d = work / ("haproxy-jwt" if jwt else "haproxy" if upstream_port is None else "haproxy-ws")
    d.mkdir(parents=True, exist_ok=True)
    rules = ""
    if jwt:
        # jwt_verify checks the signature only: the alg, exp and identity header are explicit rules
        # (keygate does all three), so both rows do comparable work.
        rules = f"""    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.bearer) url_param(access_token) unless {{ var(txn.bearer) -m found }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_header_query('$.alg') -m str RS256 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify("RS256","{RSA_PUB}") -m int 1 }}
    http-request set-var(txn.now) date()
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request deny deny_status 401 unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
    http-request set-header x-auth-user-id %[var(txn.bearer),jwt_payload_query('$.sub')]
"""
    conf = d / "haproxy.cfg"
    conf.write_text(f"""# generated by bench/bench.py
global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    maxconn {maxconn}
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 600s
    timeout server 60s
    timeout http-keep-alive {idle_timeout}
frontend fe
    bind {HOST}:{PROXY_PORT}
{rules}    default_backend up
backend up
    timeout tunnel 3600s
    server up {HOST}:{upstream_port or UPSTREAM_PORT}
""")
    return conf


def keygate_conf(work: Path, row: Row, access_log_field: bool) -> Path:
    d = work / row.id
    d.mkdir(parents=True, exist_ok=True)
    auths, route_auth = "", "anonymous"
    if row.auth == "jwt":
        auths = f"""  user:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: access_token }}]
    algorithms: [RS256]
    keys: [{{ kid: k1, pem_file: "{RSA_PUB}" }}]
    require: [sub, exp]
"""
    elif row.auth == "hmac":
        auths = f"""  user:
    type: hmac_token
    secret: "{HMAC_SECRET}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
"""
    elif row.auth == "client_secret":
        auths = f"""  user:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients: [{{ name: bench, key: "{CLIENT_KEY}", secret: "{CLIENT_SECRET}" }}]
"""
    elif row.auth == "api_key":
        auths = f"""  user:
    type: api_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: bench, value: "{API_KEY}" }}]
"""
    if auths:
        route_auth = "[user]"
    quota = f", quota: {QUOTA}" if row.quota else ""
    if row.extra == "allow_if":
        quota += """, allow_if: 'identity.user_id == "u1" && claims.sub == identity.user_id'"""
    elif row.extra == "bind_json":
        quota += ', bind_json: ["/user_id"]'
    identity = (f'identity: {{ assertion: {{ key_file: "{EC_KEY}", audience: bench-backend }} }}'
                if row.extra == "assertion" else "")
    shared = (f'shared_state: {{ redis_url: "redis://{HOST}:{REDIS_PORT}/0", key_prefix: "bench:" }}'
              if row.quota == "redis" else "")
    conf = d / "keygate.yaml"
    conf.write_text(f"""# generated by bench/bench.py (row {row.id})
version: 1
listen: "{HOST}:{PROXY_PORT}"
admin_listen: "{HOST}:{ADMIN_PORT}"
upstream: {{ url: "http://{HOST}:{UPSTREAM_PORT}" }}
shutdown_grace_seconds: 1
token_cache: {{ max_entries: {row.cache}, max_ttl_seconds: 3600 }}
{"access_log: false" if access_log_field and not row.access_log else ""}
{shared}
{identity}
authenticators:
{auths or "  {}"}
routes:
  - {{ name: all, path: "/{{*rest}}", auth: {route_auth}{quota} }}
""".replace("authenticators:\n  {}", "authenticators: {}"))
    return conf


# --------------------------------------------------------------------------------------------
# The bench session
# --------------------------------------------------------------------------------------------


class Session:
    def __init__(self, args):
        self.args = args
        self.work = TARGET / "bench-work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.proxy_cpu, self.load_cpu = args.proxy_cpu, args.load_cpu
        self.upstream: Proc | None = None
        self.redis: Proc | None = None
        self.creds: Creds | None = None
        self.log_off_method = None
        self.haproxy_version = None
        self.ws_upstream: Proc | None = None

    # -- environment ------------------------------------------------------------------------
    def preflight(self):
        ncpu = os.cpu_count() or 1
        if max(self.proxy_cpu, self.load_cpu) >= ncpu or self.proxy_cpu == self.load_cpu:
            raise BenchError(f"need two distinct cores (have {ncpu}): --proxy-cpu/--load-cpu")
        for tool in ("wrk", "nginx", "haproxy", "taskset"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found (bench/run installs it)")
        if any(r.quota == "redis" for r in ROWS if not self.args.only or r.id in self.args.only):
            if not shutil.which("redis-server"):
                raise BenchError("redis-server not found (bench/run installs it)")
        for b in (KEYGATE, BARE):
            if not b.exists():
                raise BenchError(f"{b} missing: cargo build --profile {PROFILE} --bin keygate --example bare_pingora")
        v = re.search(r"version (\d+)\.(\d+)", cmd_out(["haproxy", "-v"]))
        self.haproxy_version = (int(v[1]), int(v[2])) if v else (0, 0)
        # the harness itself (and so wrk and the upstream, unless told otherwise) on the load core
        os.sched_setaffinity(0, {self.load_cpu})
        # 10k idle connections (--memory) and HAProxy's maxconn need fds; root may raise the hard limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 65536), max(hard, 65536)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        flags = Path("/proc/cpuinfo").read_text()
        debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "-"
        commit = cmd_out(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
        dirty = cmd_out(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
        return {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu,
            "cores": os.cpu_count(),
            "virtualized": re.search(r"^flags\s*:.*\bhypervisor\b", flags, re.M) is not None,
            "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(),
            "debian": debian,
            "nginx": cmd_out(["nginx", "-v"]).replace("nginx version: nginx/", ""),
            "haproxy": cmd_out(["haproxy", "-v"]).splitlines()[0].replace("HAProxy version ", "").split(" ")[0],
            "wrk": cmd_out(["wrk", "-v"]).splitlines()[0].split(" [")[0].replace("wrk ", "").replace("debian/", ""),
            "oha": self._oha_version().replace("oha ", ""),
            "rustc": cmd_out(["rustc", "-V"]),
            "keygate_commit": commit + (" (+ uncommitted changes)" if dirty else ""),
            "keygate_version": cmd_out([str(KEYGATE), "--version"]),
            "hostname": socket.gethostname(),
        }

    def _oha_version(self):
        oha = self.oha_path()
        return cmd_out([oha, "--version"]) if oha else "-"

    @staticmethod
    def oha_path():
        p = TARGET / "bench-tools" / "bin" / "oha"
        return str(p) if p.exists() else shutil.which("oha")

    def machine_slug(self, m):
        if self.args.machine:
            return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.args.machine)
        cpu = re.sub(r"\(R\)|\(TM\)|CPU|Processor|@.*", "", m["cpu"])
        cpu = re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-").lower()
        return f"{m['cores']}c-{cpu}"

    def start_upstream(self):
        if self.upstream is None or not self.upstream.alive():
            self.upstream = start_upstream(self.work, self.load_cpu)
            st, body = http_get(UPSTREAM_PORT, headers={"x-auth-user-id": "x", "x-auth-credential": "y"})
            if (st, body) != (200, "uid=x cred=y\n"):
                raise BenchError(f"upstream answers {st} {body!r}")

    def start_redis(self):
        """redis-server on loopback for the shared-state row, on the load core beside the upstream
        (as a Redis on another host would not use the proxy's core); no persistence."""
        if self.redis is None or not self.redis.alive():
            wait_port_free(REDIS_PORT)
            self.redis = Proc("redis", ["redis-server", "--port", REDIS_PORT, "--bind", HOST, "--save", "",
                                        "--appendonly", "no", "--dir", self.work], self.load_cpu,
                              log_path=self.work / "redis.log")
            wait_port(REDIS_PORT, self.redis)

    def access_log_off_method(self):
        """How the log-off row switches the access log off: `access_log: false` if this keygate
        accepts it, else keygate's own log filter (KEYGATE_LOG=...,keygate::access=off)."""
        if self.log_off_method:
            return self.log_off_method
        probe = keygate_conf(self.work / "probe", ROW_BY_ID["keygate-log-off"], access_log_field=True)
        r = subprocess.run([str(KEYGATE), "check", "--config", str(probe)], capture_output=True, text=True)
        if r.returncode == 0:
            self.log_off_method = "config"
        else:
            self.log_off_method = "filter"
            log("`access_log: false` is not accepted by this keygate (`keygate check`: "
                f"{(r.stdout + r.stderr).strip().splitlines()[-1]}); the log-off row uses "
                "KEYGATE_LOG=info,keygate::access=off instead")
        return self.log_off_method

    # -- one row's proxy ---------------------------------------------------------------------
    def start_row(self, row: Row, idle_timeout="60s") -> Proc | None:
        """Starts the proxy under test for `row` (pinned to the proxy core); None for direct."""
        self.start_upstream()
        if row.server == "direct":
            return None
        wait_port_free(PROXY_PORT)
        d = self.work / row.id
        d.mkdir(parents=True, exist_ok=True)
        logf = d / "stderr.log"
        if row.server == "nginx":
            conf = nginx_conf(self.work, row.id, f"""        listen {HOST}:{PROXY_PORT} backlog=4096;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}""", extra_http=f"    upstream up {{ server {HOST}:{UPSTREAM_PORT}; keepalive 64; }}")
            p = Proc(row.id, ["nginx", "-e", d / "error.log", "-c", conf], self.proxy_cpu, log_path=logf)
        elif row.server in ("haproxy", "haproxy-jwt"):
            conf = haproxy_conf(self.work, row.server == "haproxy-jwt", idle_timeout, self.nofile)
            p = Proc(row.id, ["haproxy", "-db", "-f", conf], self.proxy_cpu, log_path=logf,
                     stop_signal=signal.SIGTERM)
        elif row.server == "pingora":
            p = Proc(row.id, [BARE, f"{HOST}:{PROXY_PORT}", f"{HOST}:{UPSTREAM_PORT}"], self.proxy_cpu,
                     log_path=logf, stop_signal=signal.SIGINT)
        elif row.server == "keygate":
            method = "on" if row.access_log else self.access_log_off_method()
            conf = keygate_conf(self.work, row, access_log_field=(method == "config"))
            env = dict(os.environ)
            env.pop("KEYGATE_CONFIG", None)
            env["KEYGATE_LOG"] = "info,keygate::access=off" if method == "filter" else "info"
            p = Proc(row.id, [KEYGATE, "run", "--log-format", "json", "--config", conf], self.proxy_cpu,
                     log_path=logf, env=env, stop_signal=signal.SIGINT)
        else:
            raise BenchError(f"unknown server {row.server}")
        if row.quota == "redis":
            self.start_redis()
        wait_port(PROXY_PORT, p)
        if row.server == "keygate":
            wait_port(ADMIN_PORT, p)
        if row.quota == "redis":
            deadline = time.time() + 10
            while "connected to Redis" not in Path(p.log_path).read_text(errors="replace"):
                if time.time() > deadline:
                    raise BenchError(f"{row.id}: keygate did not connect to redis-server:\n{p.tail()}")
                time.sleep(0.05)
        return p

    def stop_row(self, p: Proc | None, keep_log=False):
        if p is None:
            return
        p.stop()
        if not keep_log and p.log_path and Path(p.log_path).exists():
            Path(p.log_path).unlink()  # the access log grows ~100 MB per keygate run

    def proxy_port(self, row):
        return UPSTREAM_PORT if row.server == "direct" else PROXY_PORT

    # -- correctness ---------------------------------------------------------------------------
    def check_row(self, row: Row, p: Proc | None) -> list[str]:
        """Every check of the row; raises BenchError on the first failure. Returns what passed."""
        c, port, passed = self.creds, self.proxy_port(row), []
        cred = {"jwt": "user/k1", "hmac": "user", "client_secret": "user/bench", "api_key": "user/bench"}

        post = BIND_JSON_BODY if row.extra == "bind_json" else None
        if post is not None:
            post_type = {"Content-Type": "application/json"}
        else:
            post_type = {}

        def expect(what, headers, status, body=None, send=post):
            headers = {**headers, **post_type} if send is not None else headers
            st, got = http_get(port, headers=headers, body=send)
            if st != status or (body is not None and got != body):
                raise BenchError(f"{row.id}: {what}: got {st} {got[:200]!r}, expected {status} {body!r}")
            passed.append(what)

        def body_for(uid="u1"):
            return expected_body(row, uid).replace("{cred}", cred.get(row.auth, ""))

        if row.distinct:
            for i, tok in c.distinct_sample:
                expect(f"distinct token #{i} -> uid=u{i}", {"Authorization": f"Bearer {tok}"}, 200, body_for(f"u{i}"))
        else:
            expect("valid request -> 200 + forwarded identity", row_headers(row, c), 200, body_for())
        for what, headers in bad_requests(row, c):
            expect(f"{what} -> 401", headers, 401)
        for what, headers, send, status in refused_by_extra(row, c):
            expect(what, headers, status, send=send if send is not None else post)
        if row.extra == "assertion":
            # The upstream echoes no assertion; keygate's JWK set must publish the signing key.
            c2 = http.client.HTTPConnection(HOST, ADMIN_PORT, timeout=5)
            c2.request("GET", "/.well-known/jwks.json")
            jwks = c2.getresponse().read().decode()
            c2.close()
            if '"crv":"P-256"' not in jwks.replace(" ", ""):
                raise BenchError(f"{row.id}: no assertion key in the admin JWK set: {jwks[:200]}")
            passed.append("assertion key published")
        if row.server == "keygate" or row.server == "haproxy-jwt":
            spoof = {**row_headers(row, c), "x-auth-user-id": "evil"}
            if row.distinct:
                spoof["Authorization"] = f"Bearer {c.distinct_sample[0][1]}"
            uid = "u0" if row.distinct else "u1"
            want = body_for(uid if (row.auth in ("jwt", "hmac") or row.server == "haproxy-jwt") else "")
            expect("client-sent x-auth-user-id replaced", spoof, 200, want)
        if row.quota:
            # The quota counts (RateLimit's remaining goes down), through Redis on the Redis row
            # (no shared-state error, so no request fell back to keygate's own counters).
            left = []
            for _ in range(2):
                st, h = http_get_headers(port, headers=row_headers(row, c))
                m = re.fullmatch(r'"all";r=(\d+);t=\d+', h.get("ratelimit", ""))
                if st != 200 or not m or h.get("ratelimit-policy") != '"all";q=1000000000;w=3600':
                    raise BenchError(f"{row.id}: quota answer {st} {h}")
                left.append(int(m[1]))
            if left[1] >= left[0]:
                raise BenchError(f"{row.id}: the quota does not count: RateLimit r={left}")
            passed.append(f"quota counts (RateLimit r={left[0]} -> {left[1]})")
            if row.quota == "redis":
                # keygate starts before redis-server (then waits for "connected to Redis"), so its
                # first connection attempt fails by design: only request-path errors count.
                errors = self.metrics(r'keygate_shared_state_errors_total\{op="(?:quota|throttle)"\}')
                if any(errors.values()):
                    raise BenchError(f"{row.id}: shared-state errors: {errors}")
                passed.append("counted in Redis (no shared-state errors)")
        if p is not None:
            allowed = cmd_out(["taskset", "-cp", str(p.pid)]).rsplit(":", 1)[-1].strip()
            if allowed != str(self.proxy_cpu):
                raise BenchError(f"{row.id}: pinned to {allowed!r}, expected {self.proxy_cpu}")
            passed.append(f"pinned to cpu {allowed}")
        if row.server == "pingora":
            if "threads 1" not in Path(p.log_path).read_text(errors="replace"):
                raise BenchError(f"{row.id}: bare_pingora did not start with 1 thread: {p.tail()}")
            passed.append("threads=1")
        if row.server == "keygate":
            logs = Path(p.log_path).read_text(errors="replace")
            m = re.search(r'"threads":(\d+)', logs)
            if not m or m[1] != "1":
                raise BenchError(f"{row.id}: keygate did not start with threads=1: {logs[-500:]}")
            passed.append("threads=1")
            has_access = '"target":"keygate::access"' in logs
            if has_access != row.access_log:
                raise BenchError(f"{row.id}: access log lines present={has_access}, expected {row.access_log}")
            passed.append("access log " + ("on" if has_access else "off"))
        return passed

    def metrics(self, pattern=None):
        """Token-cache counters from /metrics, or every series matching `pattern` (a regex)."""
        try:
            c = http.client.HTTPConnection(HOST, ADMIN_PORT, timeout=5)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
        except OSError:
            return {}
        out = {}
        if pattern:
            return {m[1]: float(m[2]) for m in re.finditer(rf"^({pattern}) (\S+)$", text, re.M)}
        for name in ("keygate_token_cache_hits_total", "keygate_token_cache_misses_total"):
            m = re.search(rf"^{name} (\S+)$", text, re.M)
            if m:
                out[name] = float(m[1])
        return out

    # -- wrk -----------------------------------------------------------------------------------
    def wrk(self, row: Row, seconds: float, window: bool, offset=0):
        """One wrk run; with window=True also samples /proc during its steady state. `offset`:
        the first token of the 10k-token file to send."""
        env = dict(os.environ)
        argv = ["taskset", "-c", str(self.load_cpu), "wrk", "-t1", f"-c{self.args.connections}",
                f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(WRK_LUA)]
        if row.distinct:
            env["BENCH_TOKENS"] = str(self.creds.distinct_file)
            env["BENCH_TOKEN_OFFSET"] = str(offset)
        else:
            for k, v in row_headers(row, self.creds).items():
                argv += ["-H", f"{k}: {v}"]
        if row.extra == "bind_json":
            env["BENCH_BODY"] = BIND_JSON_BODY
        argv.append(f"http://{HOST}:{self.proxy_port(row)}/bench")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        cpu = None
        if window:
            dur = max(1, round(seconds))
            margin = min(0.3, dur * 0.1)
            time.sleep(margin)
            w = CpuWindow()
            end = time.monotonic() + dur - 2 * margin
            while time.monotonic() < end - 0.25:
                time.sleep(0.25)
                w.sample()
            time.sleep(max(0.0, end - time.monotonic()))
            cpu = w.finish()
        out, _ = p.communicate(timeout=seconds + 60)
        m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
        if p.returncode != 0 or not m:
            raise BenchError(f"{row.id}: wrk failed ({p.returncode}):\n{out[-2000:]}")
        r = json.loads(m[1])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
        return r, cpu

    def wait_quiet(self, limit):
        """Waits (up to --wait-quiet s) until nothing foreign uses the CPU."""
        deadline = time.time() + self.args.wait_quiet
        while True:
            f = foreign_now(1.0)
            if f["foreign_cores"] <= limit or time.time() > deadline:
                return f
            log(f"  busy machine: {f['foreign_cores']:.2f} cores foreign {f['foreign_top']}; waiting")

    def measure(self, row: Row, warmup=None, duration=None):
        """One repetition of one row: start, check, warm up, measure (retried while foreign
        processes use the CPU), stop."""
        a = self.args
        warmup = a.warmup if warmup is None else warmup
        duration = a.duration if duration is None else duration
        best = None
        for attempt in range(1, a.retries + 2):
            self.wait_quiet(a.max_foreign)
            p = self.start_row(row)
            ok = False
            try:
                self.check_row(row, p)
                self.warm_up(row, warmup)
                m0 = self.metrics() if row.server == "keygate" else {}
                r, cpu = self.wrk(row, duration, window=True)
                m1 = self.metrics() if row.server == "keygate" else {}
                if r["errors"]:
                    raise BenchError(f"{row.id}: wrk saw errors during the measured run: "
                                     + ", ".join(f"{k}={r[k]}" for k in r if k.startswith("err_") and r[k]))
                if p is not None and not p.alive():
                    raise BenchError(f"{row.id}: the proxy died:\n{p.tail()}")
                r["cpu"] = cpu
                r["attempt"] = attempt
                r.update(self.cache_check(row, m0, m1))
                ok = True
            finally:
                self.stop_row(p, keep_log=not ok)
            noisy = cpu["foreign_cores"] > a.max_foreign
            r["noisy"] = noisy
            log(f"  {row.id:24s} {r['rps']:>9.0f} rps  p99 {r['p99_us'] / 1000:6.2f} ms  "
                f"cpu{self.proxy_cpu} {cpu['cpu_per_core'].get(self.proxy_cpu, 0):3.0f}%  "
                f"cpu{self.load_cpu} {cpu['cpu_per_core'].get(self.load_cpu, 0):3.0f}%  "
                f"foreign {cpu['foreign_cores']:.2f}" + (f" {cpu['foreign_top']} -> retry" if noisy and attempt <= a.retries else ""))
            if best is None or cpu["foreign_cores"] < best["cpu"]["foreign_cores"]:
                best = r
            if not noisy:
                break
        return best

    def warm_up(self, row: Row, seconds=None):
        """wrk for --warmup seconds; on the cached 10k-token row, longer if needed, until every
        token has been verified once (so the measured run sees the cache it is meant to)."""
        r, _ = self.wrk(row, self.args.warmup if seconds is None else seconds, window=False)
        if row.server == "keygate" and row.distinct and row.cache > 0:
            sent, deadline = r["requests"], time.time() + 120
            while (misses := self.metrics().get("keygate_token_cache_misses_total", 0)) < DISTINCT:
                log(f"  warm-up: {misses:.0f} of {DISTINCT} tokens verified; continuing from token {sent % DISTINCT}")
                if time.time() > deadline:
                    raise BenchError(f"{row.id}: fewer than {DISTINCT} cache misses after 2 min of warm-up")
                r, _ = self.wrk(row, 1, window=False, offset=sent)  # continue where the last run stopped
                sent += r["requests"]

    def cache_check(self, row: Row, m0, m1):
        if row.auth != "jwt":
            return {}
        hits = m1.get("keygate_token_cache_hits_total", 0) - m0.get("keygate_token_cache_hits_total", 0)
        miss = m1.get("keygate_token_cache_misses_total", 0) - m0.get("keygate_token_cache_misses_total", 0)
        total = hits + miss
        ratio = hits / total if total else 0.0
        if row.cache == 0 and hits > 0:
            raise BenchError(f"{row.id}: {hits} cache hits with the cache off")
        if row.cache > 0 and ratio < 0.99:
            raise BenchError(f"{row.id}: cache hit ratio {ratio:.3f} during the measured run (expected ~1)")
        return {"cache_hit_ratio": ratio}

    # -- throughput mode -----------------------------------------------------------------------
    def throughput(self, rows):
        a = self.args
        results = {r.id: [] for r in rows}
        log(f"correctness of {len(rows)} rows ...")
        for row in rows:
            p = self.start_row(row)
            try:
                passed = self.check_row(row, p)
            finally:
                self.stop_row(p)
            log(f"  {row.id:24s} ok: {'; '.join(passed)}")
        for rep in range(1, a.reps + 1):
            log(f"repetition {rep}/{a.reps}: warm-up {a.warmup:g} s, run {a.duration:g} s per row")
            order = rows if rep % 2 else list(reversed(rows))
            for row in order:
                results[row.id].append(self.measure(row))
        return results

    def summarize(self, rows, results):
        summary = {}
        for row in rows:
            runs = results[row.id]
            rps = [r["rps"] for r in runs]
            summary[row.id] = {
                "rps": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
                "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
                "cpu_proxy": statistics.median(r["cpu"]["cpu_per_core"].get(self.proxy_cpu, 0) for r in runs),
                "cpu_load": statistics.median(r["cpu"]["cpu_per_core"].get(self.load_cpu, 0) for r in runs),
                "noisy": sum(1 for r in runs if r["noisy"]),
                "retries": sum(r["attempt"] - 1 for r in runs),
                "foreign_max": max(r["cpu"]["foreign_cores"] for r in runs),
            }
        return summary

    def throughput_table(self, rows, s):
        def ratio(v, ref):
            return f"{v / ref:.2f}" if ref else "-"

        ng = s.get("nginx", {}).get("rps")
        hj = s.get("haproxy-jwt", {}).get("rps")
        lines = [
            "| Scenario | rps | p99 ms | p50 ms | × nginx | × HAProxy JWT | CPU proxy core | CPU load core | spread | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            x = s[row.id]
            spread = 100 * (x["rps_max"] - x["rps_min"]) / x["rps"] if x["rps"] else 0
            notes = []
            if x["noisy"]:
                notes.append(f"⚠ {x['noisy']} noisy run(s), foreign CPU up to {x['foreign_max']:.2f} cores")
            if x["retries"]:
                notes.append(f"{x['retries']} retried")
            if row.id == "keygate-log-off":
                notes.append("`access_log: false`" if self.log_off_method == "config"
                             else "via KEYGATE_LOG=…,keygate::access=off")
            base = s.get("keygate-api-key")
            if row.quota and base:
                notes.append(f"{x['rps'] / base['rps']:.2f} × api_key without quota, "
                             f"p99 {x['p99_ms'] - base['p99_ms']:+.2f} ms")
            lines.append(
                f"| {row.label} | {x['rps']:,.0f} | {x['p99_ms']:.2f} | {x['p50_ms']:.2f} | {ratio(x['rps'], ng)} | "
                f"{ratio(x['rps'], hj)} | {x['cpu_proxy']:.0f}% | {x['cpu_load']:.0f}% | {spread:.0f}% | {'; '.join(notes)} |")
        return "\n".join(lines)

    def chart(self, rows, s, path: Path, title):
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib not available: no chart")
            return False
        labels = [r.label for r in rows][::-1]
        colors = ["#e07b39" if r.family == "keygate" else "#4c72b0" for r in rows][::-1]
        rps = [s[r.id]["rps"] for r in rows][::-1]
        lo = [s[r.id]["rps"] - s[r.id]["rps_min"] for r in rows][::-1]
        hi = [s[r.id]["rps_max"] - s[r.id]["rps"] for r in rows][::-1]
        p99 = [s[r.id]["p99_ms"] for r in rows][::-1]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 1.8), sharey=True)
        ax1.barh(labels, rps, xerr=[lo, hi], color=colors, capsize=2)
        ax1.set_xlabel("requests/s (median; bars: min–max)")
        for y, v in enumerate(rps):
            ax1.text(v, y, f" {v / 1000:.1f}k", va="center", fontsize=8)
        ax2.barh(labels, p99, color=colors)
        ax2.set_xlabel("p99 latency, ms (median, closed loop at saturation)")
        for y, v in enumerate(p99):
            ax2.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        for ax in (ax1, ax2):
            ax.grid(axis="x", alpha=0.3)
            ax.margins(x=0.15)
        for ax in (ax1, ax2):
            for bar, row in zip(ax.patches, rows[::-1]):
                if s[row.id]["noisy"]:
                    bar.set_hatch("///")
        if any(s[r.id]["noisy"] for r in rows):
            title += "  (hatched: noisy, other processes used the CPU)"
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True

    # -- output ----------------------------------------------------------------------------------
    def machine_md(self, m):
        return "\n".join([
            f"- Date: {m['date']}; keygate {m['keygate_commit']} ({m['keygate_version']}), {m['rustc']}, `cargo build --profile {PROFILE}`",
            f"- CPU: {m['cpu']}, {m['cores']} cores{' (virtual machine)' if m['virtualized'] else ''}; "
            f"{m['memory_gib']} GiB RAM; kernel {m['kernel']}; Debian {m['debian']}",
            f"- nginx {m['nginx']}, HAProxy {m['haproxy']}, wrk {m['wrk']}, oha {m['oha']}",
            f"- Proxy under test pinned to cpu {self.proxy_cpu}; wrk, the nginx upstream and the harness to cpu {self.load_cpu}",
        ])

    def write(self, kind, md_body, m, data, chart_rows=None, summary=None):
        a = self.args
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        suffix = (("" if kind == "throughput" else f"-{kind}") + ("-partial" if a.only else "")
                  + ("-smoke" if a.quick else ""))
        base = out / f"{day}-{self.machine_slug(m)}{suffix}"
        banner = ""
        if a.quick:
            what = {"throughput": "1 s warm-up, 1 s runs, 1 repetition",
                    "latency": "1 s runs at the rate, 1 repetition",
                    "memory": "2,000 tokens and 500 connections instead of 100k and 10k",
                    "websocket": "1 s warm-up, 1 s runs, 1 repetition"}[kind]
            banner = (f"> **Smoke run (`--quick`: {what})**, probably on a busy machine. "
                      "It shows that the harness works, not how fast anything is.\n\n")
        png = None
        if chart_rows is not None:
            png = base.with_suffix(".png")
            title = ("SMOKE RUN (--quick), not a result: " if a.quick else "") + f"keygate, {m['cpu']}, {m['date']}"
            if not self.chart(chart_rows, summary, png, title):
                png = None
        text = f"# keygate benchmark: {kind}, {m['date']}\n\n{banner}{self.machine_md(m)}\n\n{md_body}\n"
        if png:
            text += f"\n![rps and p99 per scenario]({png.name})\n"
        base.with_suffix(".md").write_text(text)
        base.with_suffix(".json").write_text(json.dumps({"machine": m, "args": vars(a), "data": data}, indent=1,
                                                        default=str))
        log(f"wrote {base}.md" + (f", {png.name}" if png else "") + ", .json")
        if not a.quick and not a.no_doc and not a.only:
            self.update_doc(kind, text, base)
        return base

    def update_doc(self, kind, text, base):
        doc = REPO / "BENCHMARKS.md"
        if not doc.exists():
            return
        start, end = f"<!-- bench:{kind}:start -->", f"<!-- bench:{kind}:end -->"
        cur = doc.read_text()
        if start not in cur or end not in cur:
            log(f"BENCHMARKS.md has no {start} … {end} markers; not updated")
            return
        rel = base.relative_to(REPO) if base.is_relative_to(REPO) else base
        body = text.split("\n", 1)[1]  # without the title
        body = body.replace("](" + base.name, f"]({rel.parent}/{base.name}")  # the chart, relative to the repo
        new = (cur.split(start)[0] + start + "\n" + f"From [`{rel}.md`]({rel}.md):\n\n" + body.strip() + "\n"
               + end + cur.split(end)[1])
        doc.write_text(new)
        log(f"updated BENCHMARKS.md ({kind})")

    # -- latency mode ----------------------------------------------------------------------------
    def latency(self, rows):
        a = self.args
        oha = self.oha_path()
        if not oha:
            raise BenchError("oha not found (bench/run --latency installs it with cargo install oha --locked)")
        log("peak rate of every row (wrk: checks, 2 s warm-up, 5 s run, retried while the machine is busy) ...")
        peaks = {}
        for row in rows:
            r = self.measure(row, warmup=min(a.warmup, 2), duration=max(1, min(a.duration, 5)))
            peaks[row.id] = r["rps"]
            if r["noisy"]:
                log(f"  {row.id}: the peak was measured on a busy machine; the rates derived from it are approximate")
        if a.rate:
            base_rate = a.rate
        else:
            if "keygate" not in peaks:
                raise BenchError("--latency needs the `keygate` row (or --rate N)")
            base_rate = round(peaks["keygate"] / 2, -2)
        # The same offered rate for every row that it keeps below 80% busy; a slower row runs at
        # half its own peak (else its p99 would measure an overload, not the proxy's latency).
        rates = {}
        for row in rows:
            rates[row.id] = base_rate if peaks[row.id] >= 1.25 * base_rate else round(peaks[row.id] / 2, -2)
        needed_direct = sorted(set(rates.values()))
        log(f"rate: {base_rate:,.0f} rps (half of keygate's peak); rows whose peak is below 1.25x that run at half "
            "their own peak")
        res = {r.id: [] for r in rows}
        direct = {rate: [] for rate in needed_direct}
        for rep in range(1, a.reps + 1):
            log(f"repetition {rep}/{a.reps}")
            for rate in needed_direct:
                direct[rate].append(self.oha_run(oha, ROW_BY_ID["direct"], rate))
            for row in rows:
                if row.id == "direct":
                    continue
                res[row.id].append(self.oha_run(oha, row, rates[row.id]))
        return peaks, rates, base_rate, res, direct

    def oha_run(self, oha, row: Row, rate):
        a = self.args
        for attempt in range(1, a.retries + 2):
            self.wait_quiet(a.max_foreign)
            p = self.start_row(row)
            try:
                self.check_row(row, p)
                if row.distinct:
                    self.warm_up(row)  # every token seen once (oha picks URLs at random)
                self.oha(oha, row, rate, a.warmup)
                r, cpu = self.oha(oha, row, rate, a.duration, window=True)
            finally:
                self.stop_row(p)
            r["cpu"] = cpu
            r["noisy"] = cpu["foreign_cores"] > a.max_foreign
            log(f"  {row.id:24s} @ {rate:>7,.0f} rps: got {r['rps']:,.0f}, p50 {r['p50_ms']:.3f} ms, "
                f"p99 {r['p99_ms']:.3f} ms, foreign {cpu['foreign_cores']:.2f}")
            if not r["noisy"]:
                break
        return r

    def oha(self, oha, row: Row, rate, seconds, window=False):
        port = self.proxy_port(row)
        argv = ["taskset", "-c", str(self.load_cpu), oha, "--no-tui", "--output-format", "json",
                "-z", f"{max(1, round(seconds))}s", "-c", str(self.args.connections), "-q", str(rate),
                "--latency-correction", "--no-color"]
        if row.distinct:
            urls = self.work / "urls-distinct.txt"
            if not urls.exists() or urls.stat().st_mtime < self.creds.distinct_file.stat().st_mtime:
                toks = self.creds.distinct_file.read_text().split()
                urls.write_text("".join(f"http://{HOST}:{port}/bench?access_token={t}\n" for t in toks))
            argv += ["--urls-from-file", str(urls)]
        else:
            for k, v in row_headers(row, self.creds).items():
                argv += ["-H", f"{k}: {v}"]
            argv.append(f"http://{HOST}:{port}/bench")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cpu = None
        if window:
            time.sleep(0.3)
            w = CpuWindow()
            end = time.monotonic() + max(1, round(seconds)) - 0.6
            while time.monotonic() < end:
                time.sleep(0.25)
                w.sample()
            cpu = w.finish()
        out, err = p.communicate(timeout=seconds + 60)
        if p.returncode != 0:
            raise BenchError(f"{row.id}: oha failed: {err[-1500:]}")
        j = json.loads(out)
        codes = j.get("statusCodeDistribution", {})
        bad = {k: v for k, v in codes.items() if k != "200"}
        # requests in flight at the deadline are aborted by oha: not an error of the proxy
        errs = {k: v for k, v in j.get("errorDistribution", {}).items() if "deadline" not in k}
        if bad or errs:
            raise BenchError(f"{row.id}: oha saw non-200 responses {bad} / errors {errs}")
        pct = j["latencyPercentiles"]
        return {
            "rps": j["summary"]["requestsPerSec"],
            "p50_ms": pct["p50"] * 1000,
            "p99_ms": pct["p99"] * 1000,
            "p999_ms": (pct.get("p99.9") or pct["p99"]) * 1000,
        }, cpu

    def latency_report(self, rows, peaks, rates, base_rate, res, direct):
        d = {rate: statistics.median(r["p99_ms"] for r in runs) for rate, runs in direct.items()}
        lines = [f"Offered load: {base_rate:,.0f} rps = half of keygate passthrough's peak "
                 f"({peaks.get('keygate', 0):,.0f} rps, wrk, this run), open loop (oha -q, "
                 f"--latency-correction, {self.args.connections} connections). A row whose own peak is "
                 "below 1.25 × that rate (it would be > 80% busy) runs at half its own peak (see *rate*).", "",
                 "| Scenario | rate rps | p50 ms | p99 ms | p99 added over direct, ms | direct p99 at that rate, ms | notes |",
                 "|---|---:|---:|---:|---:|---:|---|"]
        data = {}
        for row in rows:
            if row.id == "direct":
                continue
            runs = res[row.id]
            rate = rates[row.id]
            p99 = statistics.median(r["p99_ms"] for r in runs)
            p50 = statistics.median(r["p50_ms"] for r in runs)
            notes = []
            if any(r["noisy"] for r in runs):
                notes.append("⚠ noisy")
            if min(r["rps"] for r in runs) < 0.97 * rate:
                notes.append("⚠ did not sustain the rate")
            if rate < base_rate:
                notes.append(f"half its own peak ({peaks[row.id]:,.0f})")
            if row.distinct:
                notes.append("token in ?access_token (oha cannot vary headers)")
            if row.quota and "keygate-api-key" in res and res["keygate-api-key"]:
                base_p99 = statistics.median(r["p99_ms"] for r in res["keygate-api-key"])
                notes.append(f"p99 {p99 - base_p99:+.3f} ms over api_key without quota")
            data[row.id] = {"rate": rate, "p50_ms": p50, "p99_ms": p99, "added_ms": p99 - d[rate]}
            lines.append(f"| {row.label} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {p99 - d[rate]:+.3f} | {d[rate]:.3f} | {'; '.join(notes)} |")
        return "\n".join(lines), data

    # -- memory mode -----------------------------------------------------------------------------
    def memory(self):
        a = self.args
        n_tokens = 2000 if a.quick else MEMORY_TOKENS
        n_conns = 500 if a.quick else IDLE_CONNS
        want = set(a.only or MEMORY_ROW_IDS)
        out = {"idle": {}, "ws": {}}
        if "tokens" in want:
            out["tokens"] = self.memory_tokens(n_tokens)
        # 2. RSS after N idle keep-alive connections, per proxy
        for rid in ("keygate", "pingora", "nginx", "haproxy"):
            if f"idle-{rid}" in want:
                out["idle"][rid] = self.memory_idle(rid, n_conns)
        # 3. RSS after N idle websockets / open Socket.IO sessions, per proxy
        ws_rows = [r for r in WS_MEMORY_ROWS if r.id in want]
        if ws_rows:
            n_ws = 500 if a.quick else self.ws_max_sockets()
            out["ws"] = self.ws_memory(ws_rows, n_ws)
        return out

    def memory_tokens(self, n_tokens):
        """keygate RSS with n distinct tokens cached."""
        tokens_file = distinct_tokens(self.work, n_tokens)
        tokens = tokens_file.read_text().split()
        row = Row("keygate-memory", "keygate JWT", "keygate", "", auth="jwt", cache=max(200_000, 2 * n_tokens),
                  family="keygate")
        p = self.start_row(row)
        try:
            self.check_row(row, p)
            rss0 = rss_kib(p.pid)
            t = time.time()
            asyncio.run(send_tokens(PROXY_PORT, tokens, 32))
            fill_s = time.time() - t
            time.sleep(1)
            rss1 = rss_kib(p.pid)
            m0 = self.metrics()
            sample = random.sample(range(len(tokens)), min(1000, len(tokens)))
            asyncio.run(send_tokens(PROXY_PORT, [tokens[i] for i in sample], 32, first=sample))
            m1 = self.metrics()
            hits = m1.get("keygate_token_cache_hits_total", 0) - m0.get("keygate_token_cache_hits_total", 0)
            if hits < 0.99 * len(sample):
                raise BenchError(f"only {hits:.0f} of {len(sample)} re-sent tokens were cache hits")
            log(f"keygate: RSS {rss0 / 1024:.1f} MiB -> {rss1 / 1024:.1f} MiB after {n_tokens} distinct tokens "
                f"({(rss1 - rss0) * 1024 / n_tokens:.0f} B/token); {hits:.0f}/{len(sample)} re-sent were cache hits")
            return {"n": n_tokens, "rss0_kib": rss0, "rss1_kib": rss1, "fill_seconds": fill_s,
                    "rehit": f"{hits:.0f}/{len(sample)}"}
        finally:
            self.stop_row(p)

    def memory_idle(self, rid, n_conns):
        """RSS of one proxy after n_conns idle keep-alive connections."""
        row = ROW_BY_ID[rid]
        n, note = n_conns, ""
        if rid == "haproxy" and haproxy_maxconn(self.nofile) - 100 < n:
            n = haproxy_maxconn(self.nofile) - 100
            note = (f"capped at {n:,}: HAProxy needs 2 fds per connection and the fd hard limit here is "
                    f"{self.nofile:,} (root without CAP_SYS_RESOURCE cannot raise it)")
            log(f"haproxy: {note}")
        p = self.start_row(row, idle_timeout="600s")
        try:
            self.check_row(row, p)
            rss0 = proc_tree_rss(p.pid)
            res = asyncio.run(idle_connections(PROXY_PORT, n, hold=3.0,
                                               measure=lambda: proc_tree_rss(p.pid)))
            log(f"{rid}: RSS {rss0 / 1024:.1f} MiB -> {res['rss'] / 1024:.1f} MiB with {res['open']} idle "
                f"keep-alive connections ({(res['rss'] - rss0) * 1024 / max(1, res['open']):.0f} B/conn)")
            return {"n": n, "rss0_kib": rss0, "rss1_kib": res["rss"], "open": res["open"], "note": note}
        finally:
            self.stop_row(p)

    def memory_report(self, out):
        lines = [
            "| Measurement | RSS before | RSS after | added | per item | notes |",
            "|---|---:|---:|---:|---:|---|",
        ]
        if "tokens" in out:
            t = out["tokens"]
            lines.append(
                f"| keygate, {t['n']:,} distinct RS256 tokens cached (each sent once; {t['rehit']} re-sent were hits) | "
                f"{t['rss0_kib'] / 1024:.1f} MiB | {t['rss1_kib'] / 1024:.1f} MiB | "
                f"{(t['rss1_kib'] - t['rss0_kib']) / 1024:.1f} MiB | "
                f"{(t['rss1_kib'] - t['rss0_kib']) * 1024 / t['n']:,.0f} B/token | |")
        for rid, x in out["idle"].items():
            lines.append(
                f"| {ROW_BY_ID[rid].label}, {x['open']:,} idle keep-alive connections (each served one request) | "
                f"{x['rss0_kib'] / 1024:.1f} MiB | {x['rss1_kib'] / 1024:.1f} MiB | "
                f"{(x['rss1_kib'] - x['rss0_kib']) / 1024:.1f} MiB | "
                f"{(x['rss1_kib'] - x['rss0_kib']) * 1024 / max(1, x['open']):,.0f} B/conn | {x.get('note', '')} |")
        for rid, x in out.get("ws", {}).items():
            row = next(r for r in WS_MEMORY_ROWS if r.id == rid)
            what = ("idle websockets (each echoed one message)" if row.kind == "ws" else
                    "open Socket.IO sessions (each connected and answered one event)")
            note = ""
            if x["n"] < IDLE_CONNS:
                note = (f"{x['n']:,}, not {IDLE_CONNS:,}: a proxied websocket holds 2 fds in the proxy and the fd "
                        f"limit here is {self.nofile:,}")
            lines.append(
                f"| {row.label}, {x['open']:,} {what} | "
                f"{x['rss0_kib'] / 1024:.1f} MiB | {x['rss1_kib'] / 1024:.1f} MiB | "
                f"{(x['rss1_kib'] - x['rss0_kib']) / 1024:.1f} MiB | "
                f"{(x['rss1_kib'] - x['rss0_kib']) * 1024 / max(1, x['open']):,.0f} B/socket | {note} |")
        lines.append("")
        lines.append("RSS = VmRSS of the proxy's process tree (nginx: master + worker), after one request (before) and "
                     "after the load (after).")
        return "\n".join(lines)

    # -- websockets ------------------------------------------------------------------------------
    def start_ws_upstream(self):
        if self.ws_upstream is None or not self.ws_upstream.alive():
            self.ws_upstream = ws_upstream_proc(self.work, self.load_cpu)

    def start_ws_row(self, row: WsRow) -> Proc:
        """The proxy under test for a websocket row, in front of the node upstream (ws_upstream.js)."""
        self.start_ws_upstream()
        wait_port_free(PROXY_PORT)
        d = self.work / f"ws-{row.id}"
        d.mkdir(parents=True, exist_ok=True)
        logf = d / "stderr.log"
        if row.server == "nginx":
            conf = nginx_conf(self.work, f"ws-{row.id}", f"""        listen {HOST}:{PROXY_PORT} backlog=4096;
        location / {{
            proxy_pass http://ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}""", extra_http=f"    upstream ws {{ server {HOST}:{WS_UPSTREAM_PORT}; }}")
            p = Proc(row.id, ["nginx", "-e", d / "error.log", "-c", conf], self.proxy_cpu, log_path=logf)
        elif row.server == "haproxy":
            conf = haproxy_conf(self.work, False, "600s", self.nofile, upstream_port=WS_UPSTREAM_PORT)
            p = Proc(row.id, ["haproxy", "-db", "-f", conf], self.proxy_cpu, log_path=logf)
        elif row.server == "pingora":
            p = Proc(row.id, [BARE, f"{HOST}:{PROXY_PORT}", f"{HOST}:{WS_UPSTREAM_PORT}"], self.proxy_cpu,
                     log_path=logf, stop_signal=signal.SIGINT)
        elif row.server == "keygate":
            conf = ws_keygate_conf(self.work, row)
            env = {**os.environ, "KEYGATE_LOG": "info"}
            env.pop("KEYGATE_CONFIG", None)
            p = Proc(row.id, [KEYGATE, "run", "--log-format", "json", "--config", conf], self.proxy_cpu,
                     log_path=logf, env=env, stop_signal=signal.SIGINT)
        else:
            raise BenchError(f"unknown server {row.server}")
        wait_port(PROXY_PORT, p)
        if row.server == "keygate":
            wait_port(ADMIN_PORT, p)
        return p

    def ws_max_sockets(self):
        """A proxied websocket holds 2 fds in the proxy (client and upstream side)."""
        return min(IDLE_CONNS, (self.nofile - 200) // 2)

    def check_ws_row(self, row: WsRow):
        """One socket's round trip; on the gated keygate row also a refused CONNECT (no token, a
        tampered token) that must never reach the upstream as connected."""
        token = self.creds.jwt if row.gate else None

        async def go():
            _, w = await ws_open(PROXY_PORT, row.kind, token)
            w.close()
            if row.gate:
                for bad in ("", self.creds.jwt_bad_sig):
                    try:
                        _, w = await ws_open(PROXY_PORT, "sio", bad or None)
                        w.close()
                    except BenchError as e:
                        if "refused" not in str(e):
                            raise
                    else:
                        raise BenchError(f"{row.id}: a CONNECT with {'no' if not bad else 'a tampered'} token "
                                         "was accepted")

        asyncio.run(go())

    def ws_memory(self, rows, n):
        out = {}
        for row in rows:
            p = self.start_ws_row(row)
            try:
                self.check_ws_row(row)
                rss0 = proc_tree_rss(p.pid)
                res = asyncio.run(idle_websockets(PROXY_PORT, n, row.kind, self.creds.jwt if row.gate else None,
                                                  hold=3.0, measure=lambda: proc_tree_rss(p.pid)))
                out[row.id] = {"n": n, "rss0_kib": rss0, "rss1_kib": res["rss"], "open": res["open"]}
                log(f"{row.id}: RSS {rss0 / 1024:.1f} MiB -> {res['rss'] / 1024:.1f} MiB with {res['open']} idle "
                    f"{'Socket.IO sessions' if row.kind == 'sio' else 'websockets'} "
                    f"({(res['rss'] - rss0) * 1024 / max(1, res['open']):.0f} B/socket)")
                if res["open"] < n:
                    raise BenchError(f"{row.id}: only {res['open']} of {n} sockets were still open")
            finally:
                self.stop_row(p)
        return out

    def websocket(self, rows):
        """Messages per second through the proxy core: node ws_load.js (32 sockets, 16 messages in
        flight on each, every echo checked) on the load core, with the node upstream."""
        a = self.args
        results = {r.id: [] for r in rows}
        for row in rows:
            p = self.start_ws_row(row)
            try:
                self.check_ws_row(row)
            finally:
                self.stop_row(p)
            log(f"  {row.id:24s} ok")
        for rep in range(1, a.reps + 1):
            log(f"repetition {rep}/{a.reps}: warm-up {a.warmup:g} s, run {a.duration:g} s per row")
            for row in (rows if rep % 2 else list(reversed(rows))):
                results[row.id].append(self.ws_measure(row))
        return results

    def ws_measure(self, row: WsRow):
        a = self.args
        best = None
        for attempt in range(1, a.retries + 2):
            self.wait_quiet(a.max_foreign)
            p = self.start_ws_row(row)
            ok = False
            try:
                self.check_ws_row(row)
                url = f"ws://{HOST}:{PROXY_PORT}" + (WS_PATH if row.kind == "ws" else SIO_PATH)
                argv = ["taskset", "-c", str(self.load_cpu), "node", str(WS_LOAD_JS), row.kind, url,
                        str(a.ws_connections), str(a.ws_inflight), str(a.warmup), str(a.duration),
                        self.creds.jwt if row.gate else "-"]
                lp = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
                dur = a.duration
                margin = min(0.3, dur * 0.1)
                time.sleep(a.warmup + margin)
                w = CpuWindow()
                end = time.monotonic() + dur - 2 * margin
                while time.monotonic() < end - 0.25:
                    time.sleep(0.25)
                    w.sample()
                time.sleep(max(0.0, end - time.monotonic()))
                cpu = w.finish()
                out, err = lp.communicate(timeout=a.warmup + dur + 60)
                if lp.returncode != 0 or not out.strip():
                    raise BenchError(f"{row.id}: ws_load.js failed ({lp.returncode}): {err[-1500:]}")
                r = json.loads(out.strip().splitlines()[-1])
                if r["errors"]:
                    raise BenchError(f"{row.id}: {r['errors']} errors during the run: {err[-1500:]}")
                if not p.alive():
                    raise BenchError(f"{row.id}: the proxy died:\n{p.tail()}")
                r["cpu"], r["attempt"] = cpu, attempt
                ok = True
            finally:
                self.stop_row(p, keep_log=not ok)
            noisy = cpu["foreign_cores"] > a.max_foreign
            r["noisy"] = noisy
            log(f"  {row.id:24s} {r['rate']:>9.0f} msg/s  cpu{self.proxy_cpu} "
                f"{cpu['cpu_per_core'].get(self.proxy_cpu, 0):3.0f}%  cpu{self.load_cpu} "
                f"{cpu['cpu_per_core'].get(self.load_cpu, 0):3.0f}%  foreign {cpu['foreign_cores']:.2f}"
                + (f" {cpu['foreign_top']} -> retry" if noisy and attempt <= a.retries else ""))
            if best is None or cpu["foreign_cores"] < best["cpu"]["foreign_cores"]:
                best = r
            if not noisy:
                break
        return best

    def websocket_report(self, rows, results):
        a = self.args
        med = {}
        for row in rows:
            runs = results[row.id]
            med[row.id] = {
                "rate": statistics.median(r["rate"] for r in runs),
                "spread": (max(r["rate"] for r in runs) - min(r["rate"] for r in runs))
                / max(1, statistics.median(r["rate"] for r in runs)),
                "cpu_proxy": statistics.median(r["cpu"]["cpu_per_core"].get(self.proxy_cpu, 0) for r in runs),
                "cpu_load": statistics.median(r["cpu"]["cpu_per_core"].get(self.load_cpu, 0) for r in runs),
                "noisy": sum(1 for r in runs if r["noisy"]),
            }
        lines = [
            f"node `bench/ws_load.js`: {a.ws_connections} websockets, {a.ws_inflight} messages in flight on each "
            f"(every echo checked, then the next sent), {a.warmup:g} s warm-up + {a.duration:g} s measured, "
            f"{a.reps} interleaved repetition(s), medians; node `bench/ws_upstream.js` upstream (`ws` echo; "
            "Socket.IO 4 `ping` event answered by a `pong`). Load and upstream share the load core.",
            "",
            "| Scenario | messages/s | × nginx (same traffic) | CPU proxy core | CPU load core | spread | notes |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            m = med[row.id]
            ref = med.get("ws-nginx" if row.kind == "ws" else "sio-nginx")
            ratio = f"{m['rate'] / ref['rate']:.2f}" if ref and ref["rate"] else "-"
            note = "⚠ noisy" if m["noisy"] else ""
            lines.append(f"| {row.label} | {m['rate']:,.0f} | {ratio} | {m['cpu_proxy']:.0f}% | {m['cpu_load']:.0f}% | "
                         f"{m['spread'] * 100:.0f}% | {note} |")
        lines += ["", "A row whose proxy core is below ~100% is limited by the load core (node), not by the proxy."]
        return "\n".join(lines), med


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_tree_rss(root):
    procs = read_procs()
    return sum(rss_kib(pid) for pid in harness_pids(procs, root) if pid in procs)


async def _read_response(reader, timeout=10.0):
    try:
        return await asyncio.wait_for(_read_response_inner(reader), timeout)
    except asyncio.TimeoutError:
        raise BenchError(f"no response within {timeout:g} s") from None


async def _read_response_inner(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    body = await reader.readexactly(int(m[1])) if m else b""
    return status, body


async def send_tokens(port, tokens, conns, first=None):
    """Sends every token once (over `conns` keep-alive connections) and checks each answer."""
    queue = list(enumerate(tokens))
    queue.reverse()
    failures = []

    async def worker():
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while queue:
                i, tok = queue.pop()
                uid = f"u{first[i] if first else i}"
                writer.write(f"GET /bench HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
                status, body = await _read_response(reader)
                if status != 200 or not body.startswith(f"uid={uid} ".encode()):
                    failures.append((i, status, body[:80]))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    if failures:
        raise BenchError(f"{len(failures)} token requests failed, e.g. {failures[:3]}")


async def idle_connections(port, n, hold, measure):
    """Opens n connections, sends one request on each (64 at a time), keeps them open and idle,
    measures, closes them."""
    conns = []
    sem = asyncio.Semaphore(64)

    async def one():
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
            except (asyncio.TimeoutError, OSError) as e:
                raise BenchError(f"idle connection #{len(conns) + 1}: cannot connect ({e!r})") from None
            writer.write(b"GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n")
            status, _ = await _read_response(reader)
            if status != 200:
                raise BenchError(f"idle connection setup: status {status}")
            conns.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(hold)
    rss = measure()
    # all still open? (a closed one reads EOF at once)
    open_ = 0
    for reader, _ in conns:
        try:
            await asyncio.wait_for(reader.read(1), timeout=0.0005)
        except asyncio.TimeoutError:
            open_ += 1
    for _, w in conns:
        w.close()
    return {"rss": rss, "open": open_}




# --------------------------------------------------------------------------------------------
# Websockets and Socket.IO (--memory rows ws-*, sio-*; --websocket message throughput)
# --------------------------------------------------------------------------------------------

WS_UPSTREAM_JS = BENCH / "ws_upstream.js"
WS_LOAD_JS = BENCH / "ws_load.js"
NODE_MODULES = REPO / "tests" / "node" / "node_modules"
# the websocket upstream's port: --port-base + 1
WS_UPSTREAM_PORT = 24081
WS_PATH = "/ws"
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


@dataclass
class WsRow:
    id: str
    label: str
    server: str  # nginx | haproxy | pingora | keygate
    kind: str  # ws: plain websocket echo | sio: a Socket.IO session
    gate: bool = False  # keygate: the route is `socketio: true` (CONNECT authenticated in the stream)


# --memory: what one idle socket costs (each has echoed one message / is a connected session)
WS_MEMORY_ROWS = [
    WsRow("ws-keygate", "keygate", "keygate", "ws"),
    WsRow("ws-pingora", "bare pingora", "pingora", "ws"),
    WsRow("ws-nginx", "nginx", "nginx", "ws"),
    WsRow("ws-haproxy", "HAProxy", "haproxy", "ws"),
    WsRow("sio-keygate", "keygate, Socket.IO gate on (JWT in the CONNECT)", "keygate", "sio", gate=True),
    WsRow("sio-nginx", "nginx", "nginx", "sio"),
]
# --websocket: messages per second through one proxy core
WS_THROUGHPUT_ROWS = [
    WsRow("ws-nginx", "nginx, websocket echo", "nginx", "ws"),
    WsRow("ws-pingora", "bare pingora, websocket echo", "pingora", "ws"),
    WsRow("ws-keygate", "keygate, websocket echo", "keygate", "ws"),
    WsRow("sio-nginx", "nginx, Socket.IO events", "nginx", "sio"),
    WsRow("sio-keygate-off", "keygate, Socket.IO events, gate off (plain websocket route)", "keygate", "sio"),
    WsRow("sio-keygate", "keygate, Socket.IO events, gate on (`socketio: true`, JWT in the CONNECT)", "keygate",
          "sio", gate=True),
]
MEMORY_ROW_IDS = ["tokens", "idle-keygate", "idle-pingora", "idle-nginx", "idle-haproxy"] + [
    r.id for r in WS_MEMORY_ROWS]


def ws_frame(payload: bytes, opcode=1) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def ws_read_frame(reader):
    """One server frame: (opcode, payload)."""
    h = await reader.readexactly(2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    if h[1] & 0x80:
        await reader.readexactly(4)
    return h[0] & 0x0F, await reader.readexactly(n)


async def ws_open(port, kind, token=None, timeout=10.0):
    """Opens a websocket through the proxy and makes it do one round trip: `ws` sends one text
    message and checks the echo; `sio` reads Engine.IO's open packet, sends a Socket.IO CONNECT
    (with `token` as auth.token, Bearer), checks the server's CONNECT answer, then sends one
    `ping` event and checks the `pong`. Returns (reader, writer), idle."""

    async def go():
        reader, writer = await asyncio.open_connection(HOST, port)
        key = base64.b64encode(os.urandom(16)).decode()
        path = WS_PATH if kind == "ws" else SIO_PATH
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            raise BenchError(f"websocket upgrade answered {status}: {head[:300]!r}")
        if kind == "ws":
            writer.write(ws_frame(b"hello-bench"))
            _, data = await ws_read_frame(reader)
            if data != b"hello-bench":
                raise BenchError(f"websocket echo: {data[:80]!r}")
        else:
            _, data = await ws_read_frame(reader)
            if not data.startswith(b"0{"):
                raise BenchError(f"Engine.IO open packet expected, got {data[:80]!r}")
            auth = f'40{{"token":"Bearer {token}"}}' if token else "40"
            writer.write(ws_frame(auth.encode()))
            _, data = await ws_read_frame(reader)
            if not data.startswith(b"40{"):
                raise BenchError(f"Socket.IO CONNECT refused: {data[:200]!r}")
            writer.write(ws_frame(b'42["ping",1]'))
            _, data = await ws_read_frame(reader)
            if data != b'42["pong",1]':
                raise BenchError(f"Socket.IO pong expected, got {data[:80]!r}")
        return reader, writer

    try:
        return await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        raise BenchError(f"{kind} socket: no answer within {timeout:g} s") from None
    except (OSError, asyncio.IncompleteReadError) as e:
        raise BenchError(f"{kind} socket: {e!r}") from None


async def idle_websockets(port, n, kind, token, hold, measure):
    """Opens n websockets (64 at a time), each doing one round trip (ws_open), keeps them open
    and idle, measures, checks they are all still open, closes them."""
    conns = []
    sem = asyncio.Semaphore(64)

    async def one():
        async with sem:
            conns.append(await ws_open(port, kind, token))

    await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(hold)
    rss = measure()
    open_ = 0
    for reader, _ in conns:
        try:
            await asyncio.wait_for(reader.read(1), timeout=0.0005)
        except asyncio.TimeoutError:
            open_ += 1
    for _, w in conns:
        w.close()
    return {"rss": rss, "open": open_}


def ws_upstream_proc(work: Path, cpu: int) -> Proc:
    if not (NODE_MODULES / "ws").exists() or not (NODE_MODULES / "socket.io").exists():
        raise BenchError(f"{NODE_MODULES} lacks ws / socket.io: run `npm ci` in tests/node (bench/run does)")
    wait_port_free(WS_UPSTREAM_PORT)
    d = work / "ws-upstream"
    d.mkdir(parents=True, exist_ok=True)
    p = Proc("ws upstream", ["node", WS_UPSTREAM_JS, str(WS_UPSTREAM_PORT)], cpu, log_path=d / "stderr.log",
             env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
    wait_port(WS_UPSTREAM_PORT, p)
    return p


def ws_keygate_conf(work: Path, row: WsRow) -> Path:
    d = work / f"kg-{row.id}"
    d.mkdir(parents=True, exist_ok=True)
    sio_route, auths = "", "authenticators: {}\n"
    if row.gate:
        sio_route = '  - { name: sio, path: "/socket.io/{*rest}", socketio: true, auth: [user] }\n'
        auths = f"""authenticators:
  user:
    type: jwt
    from: [{{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys: [{{ kid: k1, pem_file: "{RSA_PUB}" }}]
    require: [sub, exp]
"""
    conf = d / "keygate.yaml"
    conf.write_text(f"""# generated by bench/bench.py (websocket row {row.id})
version: 1
listen: "{HOST}:{PROXY_PORT}"
admin_listen: "{HOST}:{ADMIN_PORT}"
upstream: {{ url: "http://{HOST}:{WS_UPSTREAM_PORT}" }}
shutdown_grace_seconds: 1
{auths}routes:
{sio_route}  - {{ name: all, path: "/{{*rest}}", auth: anonymous }}
""")
    return conf


# --------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke: 1 s warm-up, 1 s runs, 1 repetition")
    ap.add_argument("--memory", action="store_true", help="RSS: 100k cached tokens, 10k idle connections")
    ap.add_argument("--latency", action="store_true", help="p99 added over direct at half keygate's peak (oha)")
    ap.add_argument("--websocket", action="store_true",
                    help="websocket messages/s through one proxy core (plain echo; Socket.IO gate on and off)")
    ap.add_argument("--ws-connections", type=int, default=32, help="--websocket: sockets (default 32)")
    ap.add_argument("--ws-inflight", type=int, default=16,
                    help="--websocket: messages in flight on each socket (default 16)")
    ap.add_argument("--only", action="append", default=[], metavar="ROW",
                    help="run only these rows (repeatable or comma-separated); see --list")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=float, default=None, help="--latency: offered rps (default: half keygate's peak)")
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--max-foreign", type=float, default=0.05,
                    help="retry a run when processes outside the run used more than this many cores (default 0.05)")
    ap.add_argument("--retries", type=int, default=3, help="retries of a noisy run (default 3)")
    ap.add_argument("--wait-quiet", type=float, default=30.0,
                    help="before a run, wait up to this many seconds for foreign CPU use to stop")
    ap.add_argument("--port-base", type=int, default=24080,
                    help="upstream port; the proxy under test listens on +20, keygate's admin on +30, redis-server on +40")
    ap.add_argument("--machine", default=None, help="machine name in the result file names")
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--no-doc", action="store_true", help="do not update BENCHMARKS.md")
    a = ap.parse_args(argv)
    if a.quick:
        a.reps, a.warmup, a.duration = 1, 1.0, 1.0
        a.retries = min(a.retries, 1)
        a.wait_quiet = min(a.wait_quiet, 3.0)
    a.only = [x for o in a.only for x in o.split(",") if x]
    known = (MEMORY_ROW_IDS if a.memory else [r.id for r in WS_THROUGHPUT_ROWS] if a.websocket
             else list(ROW_BY_ID))
    for o in a.only:
        if o not in known:
            ap.error(f"unknown row {o!r}; rows: {', '.join(known)}")
    return a


def main(argv):
    global UPSTREAM_PORT, PROXY_PORT, ADMIN_PORT, REDIS_PORT, WS_UPSTREAM_PORT
    a = parse_args(argv)
    UPSTREAM_PORT, PROXY_PORT, ADMIN_PORT = a.port_base, a.port_base + 20, a.port_base + 30
    REDIS_PORT = a.port_base + 40
    WS_UPSTREAM_PORT = a.port_base + 1
    if a.list:
        for r in ROWS:
            print(f"{r.id:24s} {r.what}")
        print("\n--memory rows:", ", ".join(MEMORY_ROW_IDS))
        print("--websocket rows:", ", ".join(r.id for r in WS_THROUGHPUT_ROWS))
        return 0
    rows = [r for r in ROWS if not a.only or r.id in a.only]
    s = Session(a)

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        s.preflight()
        if s.haproxy_version < (2, 5):
            skipped = [r.id for r in rows if r.server == "haproxy-jwt"]
            if skipped:
                log(f"HAProxy {s.haproxy_version} has no jwt_verify (>= 2.5): skipping {skipped}")
                rows = [r for r in rows if r.server != "haproxy-jwt"]
        m = s.machine()
        log(f"machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, Debian {m['debian']}; "
            f"nginx {m['nginx']}, HAProxy {m['haproxy']}, wrk {m['wrk']}; keygate {m['keygate_commit']}")
        s.creds = make_creds(s.work)
        s.start_upstream()
        if a.memory:
            out = s.memory()
            s.write("memory", s.memory_report(out), m, out)
        elif a.websocket:
            ws_rows = [r for r in WS_THROUGHPUT_ROWS if not a.only or r.id in a.only]
            res = s.websocket(ws_rows)
            md, med = s.websocket_report(ws_rows, res)
            s.write("websocket", md, m, {"rows": med, "runs": res})
            print("\n" + md)
        elif a.latency:
            if "direct" not in [r.id for r in rows]:
                rows = [ROW_BY_ID["direct"]] + rows
            if not a.rate and "keygate" not in [r.id for r in rows]:
                rows = rows + [ROW_BY_ID["keygate"]]
            peaks, rates, base, res, direct = s.latency(rows)
            md, data = s.latency_report(rows, peaks, rates, base, res, direct)
            s.write("latency", md, m, {"peaks": peaks, "rates": rates, "rows": data,
                                       "runs": res, "direct": {str(k): v for k, v in direct.items()}})
            print("\n" + md)
        else:
            results = s.throughput(rows)
            summary = s.summarize(rows, results)
            table = s.throughput_table(rows, summary)
            method = (f"wrk -t1 -c{a.connections}, {a.warmup:g} s warm-up + {a.duration:g} s measured run per row, "
                      f"{a.reps} interleaved repetition(s), medians. *CPU* = busy share of each core during the "
                      f"measured run (/proc/stat). *spread* = (max - min) / median rps across repetitions. "
                      f"Runs during which processes outside the benchmark used more than {a.max_foreign} cores "
                      f"were retried (up to {a.retries} times).")
            s.write("throughput", method + "\n\n" + table, m, {"summary": summary, "runs": results},
                    chart_rows=rows, summary=summary)
            print("\n" + table)
        return 0
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
