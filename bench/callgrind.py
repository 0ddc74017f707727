#!/usr/bin/env python3
"""Instructions per request through a proxy, counted by valgrind's callgrind: deterministic
whatever else the machine is doing (the same binary and requests give the same count), so it
compares builds on a shared, loaded machine where wall-clock throughput means nothing.

    bench/callgrind.py pingora   [--requests N] [--binary PATH]   bench/bare_pingora.rs
    bench/callgrind.py keygate   [--requests N] [--binary PATH]   keygate, anonymous catch-all route
    bench/callgrind.py nginx     [--requests N]                   nginx proxy_pass (1 process)

The proxy runs under `valgrind --tool=callgrind --instr-atstart=no`; the harness sends
--warmup requests, switches collection on (`callgrind_control -i on`), sends --requests
requests over --connections keep-alive connections (each answer checked: 200 and the upstream's
body), switches it off and dumps. Prints Ir (instructions) per request, and with --annotate the
top functions (inclusive) from callgrind_annotate. The upstream is nginx (`return 200`), not
under valgrind. Everything binds 127.0.0.1 (ports 24180..24182, --port-base moves them).
Build the binaries first: `cargo build --release --bin keygate --example bare_pingora`
(`--binary` points at another build, e.g. a saved baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
HOST = "127.0.0.1"
REQUEST = b"GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: callgrind\r\nAccept: */*\r\n\r\n"
BODY = b"ok\n"


def wait_port(port, timeout=60.0):
    import socket

    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((HOST, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"port {port} did not open within {timeout:g} s")


def nginx_conf(d: Path, port: int, body: str, upstream: int | None) -> Path:
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    loc = (f'return 200 "{body}";' if upstream is None else
           f'proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";')
    up = "" if upstream is None else f"upstream up {{ server {HOST}:{upstream}; keepalive 64; }}"
    conf = d / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    {up}
    server {{ listen {HOST}:{port}; location / {{ {loc} }} }}
}}
""")
    return conf


def keygate_conf(d: Path, port: int, admin: int, upstream: int) -> Path:
    conf = d / "keygate.yaml"
    conf.write_text(f"""version: 1
listen: "{HOST}:{port}"
admin_listen: "{HOST}:{admin}"
upstream: {{ url: "http://{HOST}:{upstream}" }}
shutdown_grace_seconds: 1
authenticators: {{}}
routes:
  - {{ name: all, path: "/{{*rest}}", auth: anonymous }}
""")
    return conf


async def send(port, n, conns):
    left = [n]

    async def worker():
        r, w = await asyncio.open_connection(HOST, port)
        while left[0] > 0:
            left[0] -= 1
            w.write(REQUEST)
            head = await r.readuntil(b"\r\n\r\n")
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            body = await r.readexactly(int(m[1])) if m else b""
            if not head.startswith(b"HTTP/1.1 200") or body != BODY:
                raise SystemExit(f"unexpected answer: {head[:200]!r} {body[:80]!r}")
        w.close()

    await asyncio.gather(*(worker() for _ in range(conns)))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("proxy", choices=["pingora", "keygate", "nginx"])
    ap.add_argument("--binary", help="the proxy binary (default: target/release/...)")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--port-base", type=int, default=24180)
    ap.add_argument("--annotate", type=int, default=0, metavar="N", help="print the top N functions")
    ap.add_argument("--keep", help="keep the callgrind output file at this path")
    a = ap.parse_args(argv)
    up_port, px_port, admin_port = a.port_base, a.port_base + 1, a.port_base + 2
    work = Path(tempfile.mkdtemp(prefix="kg-callgrind-"))
    procs = []
    try:
        (work / "up").mkdir()
        procs.append(subprocess.Popen(["nginx", "-c", nginx_conf(work / "up", up_port, "ok\\n", None)],
                                      stderr=subprocess.DEVNULL))
        wait_port(up_port)
        out = work / "callgrind.out"
        vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        if a.proxy == "pingora":
            binary = a.binary or str(TARGET / "release" / "examples" / "bare_pingora")
            argv2 = [binary, f"{HOST}:{px_port}", f"{HOST}:{up_port}"]
        elif a.proxy == "keygate":
            binary = a.binary or str(TARGET / "release" / "keygate")
            argv2 = [binary, "run", "--config", str(keygate_conf(work, px_port, admin_port, up_port))]
        else:
            (work / "px").mkdir()
            argv2 = ["nginx", "-c", str(nginx_conf(work / "px", px_port, "", up_port))]
        env = {**os.environ, "KEYGATE_LOG": "warn"}
        # one core, as in bench/run: pingora and keygate then run one worker thread
        p = subprocess.Popen(["taskset", "-c", "0"] + vg + argv2, stdout=subprocess.DEVNULL,
                             stderr=open(work / "proxy.log", "w"), env=env, start_new_session=True)
        procs.append(p)
        wait_port(px_port, 120)
        asyncio.run(send(px_port, a.warmup, a.connections))
        subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], check=True, capture_output=True)
        t = time.time()
        asyncio.run(send(px_port, a.requests, a.connections))
        secs = time.time() - t
        subprocess.run(["callgrind_control", "-i", "off", str(p.pid)], check=True, capture_output=True)
        # the profile is written when the proxy exits (only the instrumented window counts)
        os.killpg(p.pid, signal.SIGINT if a.proxy != "nginx" else signal.SIGQUIT)
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(60)
        files = sorted(work.glob("callgrind.out*"), key=lambda f: f.stat().st_mtime)
        total = 0
        for f in files:
            counts = [int(line.split()[1]) for line in f.read_text(errors="replace").splitlines()
                      if line.startswith(("summary:", "totals:"))]
            total += max(counts, default=0)
        if not total:
            raise SystemExit(f"no totals in {files}")
        print(f"{a.proxy}: {total / a.requests:,.0f} instructions per request "
              f"({total:,} Ir over {a.requests} requests, {a.connections} connections; {secs:.1f} s under valgrind)")
        if a.annotate:
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", f"--threshold=100", str(files[-1])],
                                 capture_output=True, text=True).stdout
            lines = [l for l in ann.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
            for l in lines[: a.annotate]:
                m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$", l)
                if m:
                    print(f"{int(m[1].replace(',', '')) / a.requests:>10,.0f} {m[2]:>6}%  {m[3][:150]}")
        if a.keep:
            shutil.copy(files[-1], a.keep)
    finally:
        for p in reversed(procs):
            if p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not os.environ.get("CALLGRIND_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
