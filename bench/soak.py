#!/usr/bin/env python3
"""keygate churn soak: RSS slope under steady load with reloads, key rotation and websocket churn.

    bench/soak.py                         the full soak (2 min warm-up, 6 min measured)
    bench/soak.py --label arena2 --env MALLOC_ARENA_MAX=2
    bench/soak.py --no-reload --no-sio --no-rotation --cache-entries 0 ...   (variants)
    bench/soak.py --keygate path/to/other/keygate --label mimalloc

What runs (everything on 127.0.0.1, ports --port-base + 0..3):
  * nginx upstream: 200 "ok" for every path, /api/v1/wss/socket.io/ proxied (websocket) to
    tests/node/socketio_server.js (a real Socket.IO v4 server);
  * a JWK-set server (in this process) whose set is rotated every --rotate-every s: kid j1 (the
    signing key) stays, a second key gets a new kid each time;
  * keygate (release) with every authenticator kind (public_key, jwt with static keys, jwt
    without kid, jwt with PS256/ES256/EdDSA/HS256, jwt from the JWK-set URL, hmac_token in both
    schemes, client_secret, api_key), a socketio route, token_cache.max_entries 20000;
  * wrk -t1 at ~--rate req/s cycling 40k pre-built requests over every route: ~24k distinct
    valid JWTs (the 20k-entry cache churns), ~6% denied requests (expired, bad signature,
    unknown kid, missing or wrong credentials), 30% with `Connection: close`;
  * bench/soak_sio.js: a Socket.IO connect + ping/pong + disconnect every --sio-every s;
  * a config rewrite every --reload-every s (alternating a real change: one api key more or
    less), an invalid config every --invalid-every s (the next rewrite repairs it).

keygate's RSS (/proc/PID/status VmRSS) is sampled every --sample s; the slope is the least-squares
fit over the samples after --warmup s, in KiB/min. Output: a summary line, and samples.csv +
summary.json under $CARGO_TARGET_DIR/soak/runs/<label>/.
Needs: cargo build --release (keygate), wrk, nginx, node with `npm ci` in tests/node,
python3 with `cryptography` (the JWT signing).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
# The helpers the throughput benchmark already has: one copy of each.
from bench import b64url, hmac_token, nginx_conf, tamper  # noqa: E402

REPO = BENCH.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
FIX = REPO / "tests" / "fixtures"
HOST = "127.0.0.1"

DOKA_KID = "a89c4bdd-60d9-4803-ac2d-c7a06c56074e"
HS_SECRET = "an-hs256-secret-of-at-least-32-bytes!"
HMAC_SECRET = "soak-hmac-secret-0123456789abcdef"
CONCAT_SECRET = "soak-concat-secret-0123456789abcdef"
PUBLIC_KEY = "pk_soak_1"
CLIENTS = {"ck_billing": "billing-secret-value", "ck_crm": "crm-secret-value"}
API_KEYS = ["ak_ingest_0123456789abcdef", "ak_second_0123456789abcdef"]
ISSUER = "https://idp.soak"
TOKEN_TTL = 24 * 3600
SIO_PATH = "/api/v1/wss/socket.io"

# distinct valid JWTs per authenticator (24k in all: more than the 20k-entry cache holds)
N_DOKA, N_KNOCK, N_IDP, N_MULTI = 12_000, 4_000, 4_000, 4_000
N_LINES = 40_000
# the request mix (weights in %): every route, every authenticator, some denials
MIX = [
    ("doka", 36), ("knock", 10), ("idp", 10), ("multi", 8), ("hmac", 8), ("concat", 4),
    ("client", 6), ("apikey", 4), ("open", 8),
    ("bad_expired", 1), ("bad_sig", 1), ("bad_kid", 1), ("bad_missing", 1), ("bad_apikey", 1),
    ("bad_hmac", 1),
]


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def _enc(o) -> str:
    return b64url(json.dumps(o, separators=(",", ":")).encode())


def _sign_chunk(job):
    kind, start, count, now = job
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

    def load(name):
        return serialization.load_pem_private_key((FIX / name).read_bytes(), password=None)

    rsa, ec256, ed = load("rsa.key"), load("ec256.key"), load("ed25519.key")

    def jwt(header, claims):
        si = _enc({"typ": "JWT", **header}) + "." + _enc(claims)
        data = si.encode()
        alg = header["alg"]
        if alg == "RS256":
            sig = rsa.sign(data, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            sig = rsa.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
                           hashes.SHA256())
        elif alg == "ES256":
            r, s = utils.decode_dss_signature(ec256.sign(data, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif alg == "EdDSA":
            sig = ed.sign(data)
        else:  # HS256
            sig = hmac.new(HS_SECRET.encode(), data, hashlib.sha256).digest()
        return si + "." + b64url(sig)

    exp = now + TOKEN_TTL
    out = []
    for i in range(start, start + count):
        if kind == "doka":
            out.append(jwt({"alg": "RS256", "kid": DOKA_KID},
                           {"sub": f"c{i}", "type": "customer", "workspace_id": "ONAVZK8J", "iat": now,
                            "exp": exp}))
        elif kind == "knock":
            out.append(jwt({"alg": "RS256"}, {"sub": f"k{i}", "iat": now, "exp": exp}))
        elif kind == "idp":
            out.append(jwt({"alg": "RS256", "kid": "j1"},
                           {"sub": f"j{i}", "iss": ISSUER, "aud": "aud-1", "iat": now, "exp": exp}))
        elif kind == "multi":
            alg, kid = [("PS256", "rsa"), ("ES256", "ec256"), ("EdDSA", "ed"), ("HS256", "hs")][i % 4]
            out.append(jwt({"alg": alg, "kid": kid}, {"sub": f"m{i}", "aud": "aud-1", "iat": now, "exp": exp}))
        elif kind == "bad_expired":
            out.append(jwt({"alg": "RS256", "kid": DOKA_KID},
                           {"sub": f"x{i}", "type": "customer", "workspace_id": "ONAVZK8J", "iat": 900,
                            "exp": 1000}))
        elif kind == "bad_kid":
            out.append(jwt({"alg": "RS256", "kid": f"gone-{i}"},
                           {"sub": f"z{i}", "iss": ISSUER, "aud": "aud-1", "iat": now, "exp": exp}))
    return kind, out


def tokens(work: Path) -> dict:
    """Every token the soak sends, signed once and reused while less than 12 h old."""
    path = work / "tokens.json"
    if path.exists() and time.time() - path.stat().st_mtime < TOKEN_TTL / 2:
        return json.loads(path.read_text())
    from concurrent.futures import ProcessPoolExecutor

    now = int(time.time())
    counts = {"doka": N_DOKA, "knock": N_KNOCK, "idp": N_IDP, "multi": N_MULTI, "bad_expired": 20,
              "bad_kid": 300}
    jobs = [(k, s, min(1000, n - s), now) for k, n in counts.items() for s in range(0, n, 1000)]
    log(f"signing {sum(counts.values())} JWTs (python cryptography, 2 processes) ...")
    out: dict = {k: [] for k in counts}
    with ProcessPoolExecutor(max_workers=2) as ex:
        for kind, part in ex.map(_sign_chunk, jobs):
            out[kind] += part
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.rename(path)
    return out


def hmac_hex(user: str) -> str:
    return hmac_token(user, HMAC_SECRET)


def concat_hex(user: str) -> str:
    return hashlib.sha256((user + CONCAT_SECRET).encode()).hexdigest()


def requests_file(work: Path, toks: dict, close_ratio: float) -> tuple[Path, dict]:
    """N_LINES requests (tab-separated, see soak.lua) and one sample of each kind with the status
    keygate must answer."""
    rnd = random.Random(7)
    kinds = [k for k, w in MIX for _ in range(w)]
    seen: dict = {}
    lines, samples = [], {}
    for _ in range(N_LINES):
        kind = rnd.choice(kinds)
        i = seen[kind] = seen.get(kind, -1) + 1
        if kind == "doka":
            req = ("GET", f"/api/v1/items/{i % 97}", {"Authorization": "Bearer " + toks["doka"][i % N_DOKA]}), 200
        elif kind == "knock":
            j = i % N_KNOCK
            req = ("GET", f"/v1/users/k{j}/feeds/f{i % 7}",
                   {"Authorization": "Bearer " + PUBLIC_KEY, "X-Knock-User-Token": toks["knock"][j]}), 200
        elif kind == "idp":
            req = ("GET", f"/idp/me/{i % 13}", {"Authorization": "Bearer " + toks["idp"][i % N_IDP]}), 200
        elif kind == "multi":
            req = ("GET", f"/multi/x{i % 11}", {"X-Multi-Token": toks["multi"][i % N_MULTI]}), 200
        elif kind == "hmac":
            u = f"w{i % 5000}"
            req = ("GET", f"/widget/feed/{i % 9}", {"X-User-Id": u, "X-User-Token": hmac_hex(u)}), 200
        elif kind == "concat":
            u = f"v{i % 3000}"
            req = ("GET", "/widget/inbox", {"X-User-Id": u, "X-User-Hash": concat_hex(u)}), 200
        elif kind == "client":
            key = list(CLIENTS)[i % 2]
            req = ("POST", f"/v1/events/e{i % 5}", {"X-Client-Key": key, "X-Client-Secret": CLIENTS[key]}), 200
        elif kind == "apikey":
            req = ("POST", "/v1/events/ingest", {"Authorization": "Bearer " + API_KEYS[0]}), 200
        elif kind == "open":
            req = ("GET", f"/public/p{i % 50}", {}), 200
        elif kind == "bad_expired":
            req = ("GET", "/api/v1/items", {"Authorization": "Bearer " + toks["bad_expired"][i % 20]}), 401
        elif kind == "bad_sig":
            req = ("GET", "/api/v1/items", {"Authorization": "Bearer " + tamper(toks["doka"][i % N_DOKA])}), 401
        elif kind == "bad_kid":
            req = ("GET", "/idp/me", {"Authorization": "Bearer " + toks["bad_kid"][i % 300]}), 401
        elif kind == "bad_missing":
            req = ("GET", "/api/v1/items", {}), 401
        elif kind == "bad_apikey":
            req = ("POST", "/v1/events/ingest", {"Authorization": "Bearer ak_wrong_key"}), 401
        else:  # bad_hmac
            req = ("GET", "/widget/feed", {"X-User-Id": "w1", "X-User-Token": "0" * 64}), 401
        (method, path, headers), status = req
        samples.setdefault(kind, (method, path, dict(headers), status))
        if rnd.random() < close_ratio:
            headers["Connection"] = "close"
        lines.append("\t".join([method, path, *(f"{k}: {v}" for k, v in headers.items())]))
    path = work / "requests.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path, samples


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def keygate_config(ports: dict, cache_entries: int, generation: int, invalid: bool) -> str:
    second_key = (f'\n      - {{ name: second, sha256: "{hashlib.sha256(API_KEYS[1].encode()).hexdigest()}" }}'
                  if generation % 2 else "")
    events_auth = "[doka_server, events_key, nope]" if invalid else "[doka_server, events_key]"
    rsa = FIX / "rsa.pub"
    return f"""# bench/soak.py, generation {generation}{' (invalid: unknown authenticator)' if invalid else ''}
version: 1
mode: production
listen: "{HOST}:{ports['keygate']}"
admin_listen: "{HOST}:{ports['admin']}"
upstream: {{ url: "http://{HOST}:{ports['upstream']}" }}
identity:
  claims: {{ workspace_id: x-auth-workspace-id }}
token_cache: {{ max_entries: {cache_entries}, max_ttl_seconds: 300 }}
limits: {{ max_connections: 10000 }}
authenticators:
  knock_public:
    type: public_key
    from: [{{ header: authorization, scheme: Bearer }}, {{ query: api_key }}]
    keys: [{{ name: web, value: "{PUBLIC_KEY}" }}]
    user_id_from: {{ path_param: user_id }}
  knock_user:
    type: jwt
    from: [{{ header: x-knock-user-token }}, {{ query: user_token }}]
    algorithms: [RS256]
    keys: [{{ pem_file: "{rsa}" }}]
    require: [sub, iat, exp]
  widget_hmac:
    type: hmac_token
    secret: "{HMAC_SECRET}"
    token_from: {{ header: x-user-token }}
    user_id_from: {{ header: x-user-id }}
  widget_concat:
    type: hmac_token
    scheme: sha256_concat
    secret: "{CONCAT_SECRET}"
    token_from: {{ header: x-user-hash }}
    user_id_from: {{ header: x-user-id }}
  doka_server:
    type: client_secret
    key_from: {{ header: x-client-key }}
    secret_from: {{ header: x-client-secret }}
    clients:
      - {{ name: billing, key: ck_billing, secret_sha256: "{hashlib.sha256(CLIENTS['ck_billing'].encode()).hexdigest()}" }}
      - {{ name: crm, key: ck_crm, secret: "{CLIENTS['ck_crm']}" }}
  events_key:
    type: api_key
    from: {{ header: authorization, scheme: Bearer }}
    keys:
      - {{ name: ingest, sha256: "{hashlib.sha256(API_KEYS[0].encode()).hexdigest()}" }}{second_key}
  doka_customer:
    type: jwt
    from: [{{ header: authorization, scheme: Bearer }}, {{ socketio_auth: token, scheme: Bearer }}]
    algorithms: [RS256]
    keys: [{{ kid: "{DOKA_KID}", pem_file: "{rsa}" }}]
    require: [sub, exp]
    claims: {{ type: customer, workspace_id: [ONAVZK8J, SECOND01] }}
  multi:
    type: jwt
    from: {{ header: x-multi-token }}
    algorithms: [PS256, ES256, EdDSA, HS256]
    audiences: [aud-1]
    keys:
      - {{ kid: rsa, pem_file: "{rsa}" }}
      - {{ kid: ec256, pem_file: "{FIX / 'ec256.pub'}" }}
      - {{ kid: ed, pem_file: "{FIX / 'ed25519.pub'}" }}
      - {{ kid: hs, secret: "{HS_SECRET}" }}
  idp:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "http://{HOST}:{ports['jwks']}/jwks.json"
    issuers: ["{ISSUER}"]
    audiences: [aud-1]
    algorithms: [RS256]
    jwks: {{ refresh_seconds: 20, min_refresh_interval_seconds: 5, timeout_ms: 1000 }}
routes:
  - {{ name: health, path: /healthz, auth: anonymous }}
  - name: knock_feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    methods: [GET]
    auth: [[knock_public, knock_user]]
    bind: {{ user_id: "{{user_id}}" }}
  - {{ name: widget, path: "/widget/{{*rest}}", auth: [widget_hmac, widget_concat] }}
  - {{ name: events, path: "/v1/events/{{*rest}}", methods: [POST], auth: {events_auth} }}
  - {{ name: socketio, path: "{SIO_PATH}/{{*rest}}", socketio: true, auth: [doka_customer] }}
  - {{ name: customer_api, path: "/api/v1/{{*rest}}", auth: [doka_customer] }}
  - {{ name: multi, path: "/multi/{{*rest}}", auth: [multi] }}
  - {{ name: idp, path: "/idp/{{*rest}}", auth: [idp] }}
  - {{ name: open, path: "/public/{{*rest}}", auth: anonymous }}
"""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


# --------------------------------------------------------------------------------------------
# JWK-set server (rotating)
# --------------------------------------------------------------------------------------------


class Jwks:
    def __init__(self, port: int):
        self.rotation = 0
        self.fetches = 0
        self.j1 = json.loads((FIX / "rsa.jwk.json").read_text())
        self.other = json.loads((FIX / "rsa_other.jwk.json").read_text())
        self.doc = b""
        self.rotate()
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.fetches += 1
                body = owner.doc
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer((HOST, port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def rotate(self) -> None:
        """j1 (the signing key) stays; the other key gets a new kid: a new set every time."""
        self.rotation += 1
        keys = [{**self.j1, "kid": "j1", "alg": "RS256", "use": "sig"},
                {**self.other, "kid": f"rot-{self.rotation}", "alg": "RS256", "use": "sig"}]
        self.doc = json.dumps({"keys": keys}).encode()

    def stop(self):
        self.srv.shutdown()


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

RUNNING: list[subprocess.Popen] = []


def spawn(argv, **kw) -> subprocess.Popen:
    p = subprocess.Popen([str(a) for a in argv], start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    RUNNING.append(p)
    return p


def stop(p: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        except ProcessLookupError:
            pass
    if p in RUNNING:
        RUNNING.remove(p)


def stop_all(*_):
    for p in list(RUNNING):
        stop(p)


def wait_port(port: int, p: subprocess.Popen | None = None, timeout=20.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if p is not None and p.poll() is not None:
            raise SystemExit(f"process for port {port} exited ({p.returncode})")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def nginx(work: Path, port: int, node_port: int) -> subprocess.Popen:
    d = work / "nginx"
    conf = nginx_conf(work, "nginx", f"""        listen {HOST}:{port} backlog=4096;
        location / {{ return 200 "ok uid=$http_x_auth_user_id\\n"; }}
        location {SIO_PATH}/ {{
            proxy_pass http://{HOST}:{node_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 600s;
        }}""")
    p = spawn(["nginx", "-e", d / "error.log", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p


def node_server(work: Path) -> tuple[subprocess.Popen, int]:
    out = work / "socketio_server.log"
    f = open(out, "wb")
    p = spawn(["node", REPO / "tests" / "node" / "socketio_server.js", SIO_PATH], stdout=f, stderr=f)
    f.close()
    end = time.time() + 20
    while time.time() < end:
        for line in out.read_text(errors="replace").splitlines():
            m = re.search(r'"event":"listening","port":(\d+)', line)
            if m:
                return p, int(m.group(1))
        if p.poll() is not None:
            raise SystemExit(f"socketio_server.js exited:\n{out.read_text()}")
        time.sleep(0.1)
    raise SystemExit("socketio_server.js did not start (npm ci in tests/node?)")


class LogTail:
    """Reads keygate's stderr: counts access-log lines, writes the others to `path` (and keeps the
    last 200)."""

    def __init__(self, stream, path: Path):
        self.access = 0
        self.file = open(path, "w", buffering=1)
        self.other: list[str] = []
        self.levels: dict = {}
        threading.Thread(target=self.run, args=(stream,), daemon=True).start()

    def run(self, stream):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if '"target":"keygate::access"' in line:
                self.access += 1
                continue
            m = re.search(r'"level":"(\w+)"', line)
            lvl = m.group(1) if m else "?"
            self.levels[lvl] = self.levels.get(lvl, 0) + 1
            self.other.append(line)
            del self.other[:-200]
            self.file.write(line + "\n")


def rss(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "VmSize", "Threads"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def scrape(admin_port: int) -> dict:
    """The /metrics values the soak reports."""
    try:
        c = http.client.HTTPConnection(HOST, admin_port, timeout=2)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except OSError:
        return {}
    m: dict = {"allowed": 0, "denied": 0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, val = line.rpartition(" ")
        try:
            v = float(val)
        except ValueError:
            continue
        if name.startswith("keygate_requests_total"):
            m["allowed" if 'outcome="allowed"' in name else "denied"] += v
        elif name == "keygate_token_cache_hits_total":
            m["cache_hits"] = v
        elif name == "keygate_token_cache_misses_total":
            m["cache_misses"] = v
        elif name.startswith("keygate_config_reloads_total"):
            m["reloads_" + ("ok" if 'result="ok"' in name else "error")] = v
        elif name.startswith("keygate_jwks_fetches_total") and 'result="ok"' in name:
            m["jwks_ok"] = v
    return m


def check_samples(port: int, samples: dict) -> None:
    """Every kind of request gets the status it must, before the soak starts."""
    bad = []
    for kind, (method, path, headers, want) in samples.items():
        c = http.client.HTTPConnection(HOST, port, timeout=5)
        c.request(method, path, headers=headers, body=b"" if method == "POST" else None)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != want:
            bad.append(f"{kind}: {method} {path} -> {r.status} (want {want}) {body[:200]!r}")
    if bad:
        raise SystemExit("request samples failed:\n  " + "\n  ".join(bad))


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, KiB)."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="baseline", help="run name (output directory)")
    ap.add_argument("--keygate", default=str(TARGET / "release" / "keygate"), help="keygate binary")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="extra env for keygate")
    ap.add_argument("--warmup", type=float, default=120, help="seconds before the measured window")
    ap.add_argument("--measure", type=float, default=360, help="measured window, seconds")
    ap.add_argument("--sample", type=float, default=10, help="RSS sample period, seconds")
    ap.add_argument("--rate", type=float, default=1000, help="target requests/s")
    ap.add_argument("--conns", type=int, default=10, help="wrk connections")
    ap.add_argument("--close-ratio", type=float, default=0.3, help="share of requests with Connection: close")
    ap.add_argument("--cache-entries", type=int, default=20000, help="token_cache.max_entries (0: off)")
    ap.add_argument("--reload-every", type=float, default=30)
    ap.add_argument("--invalid-every", type=float, default=120)
    ap.add_argument("--rotate-every", type=float, default=60)
    ap.add_argument("--sio-every", type=float, default=1.0)
    ap.add_argument("--no-reload", action="store_true")
    ap.add_argument("--no-rotation", action="store_true")
    ap.add_argument("--no-sio", action="store_true")
    ap.add_argument("--port-base", type=int, default=25080)
    a = ap.parse_args()

    work = TARGET / "soak"
    run = work / "runs" / a.label
    run.mkdir(parents=True, exist_ok=True)
    ports = {"upstream": a.port_base, "keygate": a.port_base + 1, "admin": a.port_base + 2,
             "jwks": a.port_base + 3}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    toks = tokens(work)
    reqs, samples = requests_file(run, toks, a.close_ratio)
    (run / "sio_tokens.txt").write_text("\n".join(toks["doka"][:500]) + "\n")

    try:
        jwks = Jwks(ports["jwks"])
        node, node_port = node_server(run)
        up = nginx(run, ports["upstream"], node_port)
        cfg_path = run / "keygate.yaml"
        generation = 0
        write_atomic(cfg_path, keygate_config(ports, a.cache_entries, generation, False))
        env = {**os.environ, "KEYGATE_LOG": "info"}
        for kv in a.env:
            k, _, v = kv.partition("=")
            env[k] = v
        kg = spawn([a.keygate, "run", "--config", cfg_path, "--log-format", "json"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        logs = LogTail(kg.stderr, run / "keygate-nonaccess.log")
        wait_port(ports["keygate"], kg)
        for _ in range(100):  # /readyz: the JWK set fetched
            try:
                c = http.client.HTTPConnection(HOST, ports["admin"], timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        check_samples(ports["keygate"], samples)
        log(f"{a.label}: keygate pid {kg.pid}, env {a.env or '-'}, cache {a.cache_entries}, "
            f"reload {'off' if a.no_reload else a.reload_every}, rotation {'off' if a.no_rotation else a.rotate_every}, "
            f"sio {'off' if a.no_sio else a.sio_every}; warm-up {a.warmup:.0f} s, measured {a.measure:.0f} s")

        total = a.warmup + a.measure
        delay_ms = max(0, round(a.conns * 1000 / a.rate - 1))
        wrk_env = {**os.environ, "SOAK_REQUESTS": str(reqs), "SOAK_DELAY_MS": str(delay_ms)}
        wrk = spawn(["wrk", "-t1", f"-c{a.conns}", f"-d{int(total) + 5}s", "--timeout", "10s", "-s",
                     BENCH / "soak.lua", f"http://{HOST}:{ports['keygate']}/"], env=wrk_env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sio = None
        if not a.no_sio:
            sio = spawn(["node", BENCH / "soak_sio.js", f"http://{HOST}:{ports['keygate']}", SIO_PATH,
                         run / "sio_tokens.txt", int(a.sio_every * 1000)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            sio_last = {"line": ""}

            def read_sio():
                for line in sio.stdout:
                    sio_last["line"] = line.decode().strip()

            threading.Thread(target=read_sio, daemon=True).start()

        t0 = time.monotonic()
        next_reload = a.reload_every
        next_rotate = a.rotate_every
        next_sample = 0.0
        rows = []
        tick = 0
        while True:
            t = time.monotonic() - t0
            if t >= total:
                break
            if kg.poll() is not None:
                raise SystemExit("keygate exited:\n" + "\n".join(logs.other[-20:]))
            if not a.no_reload and t >= next_reload:
                tick += 1
                invalid = a.invalid_every > 0 and (tick * a.reload_every) % a.invalid_every < 1e-6
                if not invalid:
                    generation += 1
                write_atomic(cfg_path, keygate_config(ports, a.cache_entries, generation, invalid)
                             + f"# tick {tick}\n")
                next_reload += a.reload_every
            if not a.no_rotation and t >= next_rotate:
                jwks.rotate()
                next_rotate += a.rotate_every
            if t >= next_sample:
                s = rss(kg.pid)
                m = scrape(ports["admin"])
                row = {"t": round(t, 1), **s, **m, "jwks_served": jwks.fetches, "access_lines": logs.access}
                rows.append(row)
                rps = ""
                if len(rows) > 1:
                    prev = rows[-2]
                    dt = row["t"] - prev["t"]
                    rps = f"{(row.get('allowed', 0) + row.get('denied', 0) - prev.get('allowed', 0) - prev.get('denied', 0)) / dt:.0f}"
                log(f"t={t:5.0f}s RSS {s['VmRSS'] / 1024:7.1f} MiB anon {s['RssAnon'] / 1024:7.1f} threads "
                    f"{s['Threads']} fds {s['fds']} rps {rps} reloads {m.get('reloads_ok', 0):.0f}/{m.get('reloads_error', 0):.0f} "
                    f"jwks {m.get('jwks_ok', 0):.0f} sio {sio_last['line'] if sio else '-'}")
                next_sample += a.sample
            time.sleep(0.2)

        # the memory map at the end (glibc arenas show as 64 MiB-aligned anonymous regions)
        (run / "smaps.txt").write_text(Path(f"/proc/{kg.pid}/smaps").read_text())
        wrk_out = wrk.communicate(timeout=60)[0].decode()
        RUNNING.remove(wrk)
        wj = {}
        for line in wrk_out.splitlines():
            if line.startswith("SOAKJSON "):
                wj = json.loads(line[len("SOAKJSON "):])
        window = [r for r in rows if r["t"] >= a.warmup - 0.5]
        pts = [(r["t"] / 60, r["VmRSS"]) for r in window]
        anon = [(r["t"] / 60, r["RssAnon"]) for r in window]
        first, last = window[0], window[-1]
        half = [p for p in pts if p[0] >= (first["t"] + last["t"]) / 120]
        dur = wj.get("duration_us", 1) / 1e6
        summary = {
            "label": a.label, "env": a.env, "keygate": a.keygate, "cache_entries": a.cache_entries,
            "reload": not a.no_reload, "rotation": not a.no_rotation, "sio": not a.no_sio,
            "warmup_s": a.warmup, "measure_s": a.measure,
            "slope_kib_min": round(slope(pts), 1), "anon_slope_kib_min": round(slope(anon), 1),
            "late_half_slope_kib_min": round(slope(half), 1),
            "rss_start_kib": first["VmRSS"], "rss_end_kib": last["VmRSS"],
            "rss_max_kib": max(r["VmRSS"] for r in window),
            "rps": round(wj.get("requests", 0) / dur, 1), "wrk": wj,
            "reloads_ok": last.get("reloads_ok"), "reloads_error": last.get("reloads_error"),
            "jwks_fetches_ok": last.get("jwks_ok"), "jwks_rotations": jwks.rotation - 1,
            "sio": sio_last["line"] if sio else None,
            "cache_hits": last.get("cache_hits"), "cache_misses": last.get("cache_misses"),
            "allowed": last.get("allowed"), "denied": last.get("denied"),
            "log_levels": logs.levels,
        }
        (run / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        keys = sorted({k for r in rows for k in r})
        with open(run / "samples.csv", "w") as f:
            f.write(",".join(keys) + "\n")
            for r in rows:
                f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
        print(f"SOAK {a.label}: slope {summary['slope_kib_min']} KiB/min (anon {summary['anon_slope_kib_min']}, "
              f"second half {summary['late_half_slope_kib_min']}), "
              f"RSS {first['VmRSS'] / 1024:.1f} -> {last['VmRSS'] / 1024:.1f} MiB over "
              f"{(last['t'] - first['t']) / 60:.1f} min, {summary['rps']} req/s, "
              f"reloads {summary['reloads_ok']:.0f} ok / {summary['reloads_error']:.0f} error, "
              f"sio {summary['sio']}; {run}/summary.json", flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
