#!/usr/bin/env python3
"""Checks the Helm chart with the real Helm engine (helm-python-sdk): lint, render every values
file in helm/keygate/ci/, validate the output against Kubernetes 1.30 schemas
(kubernetes-validate; CRD kinds allowed only for monitoring.coreos.com), check what the chart
promises (security context, probes, grace period, restart checksum, sidecar wiring, the
forward-auth listener's ports and probe, shared state's Redis URL from a Secret), and run
`keygate check` on every rendered keygate config. Exits non-zero on any failure."""

import copy
import glob
import os
import re
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

CHART = "helm/keygate"
KEYGATE = os.environ.get("KEYGATE_BIN", "target/debug/keygate")
CRD_GROUPS = ("monitoring.coreos.com/",)
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


def render(values):
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name="kg", namespace="default")
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def kind(docs, k):
    return [d for d in docs if d["kind"] == k]


def check_values_file(vf):
    values = helm.values_from_yaml(open(vf).read())
    lint = helm.lint(CHART, values, strict=True, kube_version="v1.30.0")
    for m in lint.get("messages", []) or []:
        if m.get("severity", 0) >= 3:
            fail(f"{vf}: helm lint: {m}")
    docs = render(values)
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, doc in enumerate(docs):
            f = os.path.join(d, f"{i}-{doc['kind']}.yaml")
            open(f, "w").write(yaml.safe_dump(doc))
            files.append((f, doc))
        res = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.30"] + [f for f, _ in files],
                             capture_output=True, text=True)
        for line in (res.stdout + res.stderr).splitlines():
            if line.startswith("INFO") or not line.strip() or "symbolic link" in line:
                continue
            doc = next((doc for f, doc in files if f in line), None)
            if line.startswith("WARN") and doc and doc["apiVersion"].startswith(CRD_GROUPS):
                continue
            fail(f"{vf}: kubernetes-validate: {line}")
        if res.returncode != 0:
            fail(f"{vf}: kubernetes-validate exited {res.returncode}")

    deps = kind(docs, "Deployment")
    if len(deps) != 1:
        fail(f"{vf}: expected one Deployment, got {len(deps)}")
        return
    pod = deps[0]["spec"]["template"]["spec"]
    kg = next(c for c in pod["containers"] if c["name"] == "keygate")
    sc = kg["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("runAsNonRoot") and sc["capabilities"]["drop"] == ["ALL"]
            and sc.get("allowPrivilegeEscalation") is False):
        fail(f"{vf}: keygate securityContext is not hardened: {sc}")
    if pod["securityContext"].get("runAsUser") != 65532:
        fail(f"{vf}: pod does not run as uid 65532")
    if kg["livenessProbe"]["httpGet"]["path"] != "/healthz" or kg["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail(f"{vf}: probes are not /healthz and /readyz on the admin port")
    if "requests" not in kg["resources"]:
        fail(f"{vf}: no resource requests")
    if "checksum/keygate-restart" not in deps[0]["spec"]["template"]["metadata"]["annotations"]:
        fail(f"{vf}: no restart checksum annotation")
    cms = [c for c in kind(docs, "ConfigMap") if "config.yaml" in c.get("data", {})]
    if values.get("existingConfigMap"):
        if cms:
            fail(f"{vf}: rendered a ConfigMap although existingConfigMap is set")
        vol = next(v for v in pod["volumes"] if v["name"] == "keygate-config")
        if vol["configMap"]["name"] != values["existingConfigMap"]:
            fail(f"{vf}: the config volume does not use existingConfigMap")
        return
    cfg = yaml.safe_load(cms[0]["data"]["config.yaml"])
    grace = cfg.get("shutdown_grace_seconds", 25)
    if pod["terminationGracePeriodSeconds"] <= grace:
        fail(f"{vf}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} <= shutdown_grace_seconds {grace}")
    check_forward_auth(vf, values, docs, kg, cfg)
    check_shared_state(vf, values, kg, cfg)
    if values.get("mode") == "sidecar":
        names = [c["name"] for c in pod["containers"]]
        if values["sidecar"]["backend"]["name"] not in names:
            fail(f"{vf}: sidecar mode lacks the backend container: {names}")
        if cfg["upstream"]["url"] != f"http://127.0.0.1:{values['sidecar']['backend']['port']}":
            fail(f"{vf}: sidecar upstream is not the backend on localhost: {cfg['upstream']}")
        svc = kind(docs, "Service")[0]
        if svc["spec"]["ports"][0]["targetPort"] != "http":
            fail(f"{vf}: the Service does not point at keygate")
    # The rendered config passes `keygate check` (secret env vars given dummy values).
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(cms[0]["data"]["config.yaml"])
    env = dict(os.environ)
    for s in values.get("secretEnv", []) or []:
        env[s["name"]] = "ci-placeholder-value"
    if (values.get("sharedState") or {}).get("enabled"):
        env["KEYGATE_REDIS_URL"] = "redis://:ci-placeholder-value@redis.default.svc:6379/0"
    res = subprocess.run([KEYGATE, "check", "--config", f.name], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    if res.returncode != 0:
        fail(f"{vf}: keygate check: {res.stderr.strip()}")
    else:
        print("ok  ", vf, "->", res.stdout.strip())


def check_forward_auth(vf, values, docs, kg, cfg):
    """forwardAuth.enabled: the listener in the config, a container port, a probe, a Service port."""
    if not (values.get("forwardAuth") or {}).get("enabled"):
        if "forward-auth" in [p["name"] for p in kg["ports"]]:
            fail(f"{vf}: forward-auth port without forwardAuth.enabled")
        return
    port = (values.get("ports") or {}).get("forwardAuth", 8081)
    if (cfg.get("forward_auth") or {}).get("listen") != f"0.0.0.0:{port}":
        fail(f"{vf}: forward_auth.listen is not 0.0.0.0:{port}: {cfg.get('forward_auth')}")
    if {"name": "forward-auth", "containerPort": port, "protocol": "TCP"} not in kg["ports"]:
        fail(f"{vf}: no container port forward-auth {port}: {kg['ports']}")
    if (kg.get("startupProbe") or {}).get("tcpSocket", {}).get("port") != "forward-auth":
        fail(f"{vf}: no startup probe on the forward-auth port")
    svc = kind(docs, "Service")[0]
    if not any(p["name"] == "forward-auth" and p["targetPort"] == "forward-auth" for p in svc["spec"]["ports"]):
        fail(f"{vf}: the Service has no forward-auth port: {svc['spec']['ports']}")


def check_shared_state(vf, values, kg, cfg):
    """sharedState.enabled: the Redis URL only from the Secret, through ${KEYGATE_REDIS_URL}."""
    shared = values.get("sharedState") or {}
    env = {e["name"]: e for e in kg.get("env", [])}
    if not shared.get("enabled"):
        if "KEYGATE_REDIS_URL" in env or "shared_state" in cfg:
            fail(f"{vf}: shared state rendered without sharedState.enabled")
        return
    ref = (env.get("KEYGATE_REDIS_URL") or {}).get("valueFrom", {}).get("secretKeyRef")
    want = {"name": shared["redisUrlSecret"]["name"], "key": shared["redisUrlSecret"].get("key", "redis-url")}
    if ref != want:
        fail(f"{vf}: KEYGATE_REDIS_URL is not read from the Secret {want}: {ref}")
    ss = cfg.get("shared_state") or {}
    if ss.get("redis_url") != "${KEYGATE_REDIS_URL}":
        fail(f"{vf}: shared_state.redis_url is not ${{KEYGATE_REDIS_URL}}: {ss}")
    if ss.get("on_unavailable") != shared.get("onUnavailable", "local"):
        fail(f"{vf}: shared_state.on_unavailable does not follow sharedState.onUnavailable: {ss}")


def check_shared_state_needs_secret():
    try:
        render({"sharedState": {"enabled": True}})
        fail("sharedState.enabled without redisUrlSecret.name rendered")
    except helm.HelmError as e:
        if "redisUrlSecret.name" not in str(e):
            fail(f"unexpected error for shared state without a Secret: {e}")


def checksum(values):
    dep = kind(render(values), "Deployment")[0]
    return dep["spec"]["template"]["metadata"]["annotations"]["checksum/keygate-restart"]


def restart_only_fields():
    """ServerSettings::FIELDS from src/settings.rs: the settings a reload cannot apply."""
    text = open(os.path.join(os.path.dirname(CHART), "..", "src", "settings.rs")).read()
    block = re.search(r"const FIELDS: \[&'static str; \d+\] = \[(.*?)\];", text, re.S)
    if not block:
        fail("cannot find ServerSettings::FIELDS in src/settings.rs")
        return []
    return re.findall(r'"([a-z_.]+)"', block.group(1))


def check_restart_checksum():
    base = helm.values_from_yaml(open(f"{CHART}/ci/gateway.yaml").read())
    c = checksum(base)
    routes_changed = copy.deepcopy(base)
    routes_changed["config"]["routes"].append({"name": "extra", "path": "/extra", "auth": "anonymous"})
    if checksum(routes_changed) != c:
        fail("a route change (hot-reloadable) changes the restart checksum")
    port_changed = copy.deepcopy(base)
    port_changed["ports"] = {"http": 8081, "admin": 9090}
    if checksum(port_changed) == c:
        fail("a container port change does not change the restart checksum")
    fields = restart_only_fields()
    if len(fields) < 6:
        fail(f"ServerSettings::FIELDS looks incomplete: {fields}")
    # Every restart-only field rolls the pods when it changes (the chart sets `listen` and
    # `admin_listen` from `ports`, checked above).
    for field in fields:
        if field in ("listen", "admin_listen"):
            continue
        changed = copy.deepcopy(base)
        node = changed["config"]
        *parents, leaf = field.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        old = node.get(leaf)
        node[leaf] = old + 1 if isinstance(old, int) else {"changed": field} if leaf in ("tls", "telemetry", "shared_state") else "127.0.0.1:7777"
        if checksum(changed) == c:
            fail(f"a change of the restart-only `{field}` does not change the restart checksum")


def check_sidecar_needs_backend():
    try:
        render({"mode": "sidecar"})
        fail("mode: sidecar without sidecar.backend.image rendered")
    except helm.HelmError as e:
        if "sidecar.backend.image" not in str(e):
            fail(f"unexpected error for a sidecar without backend: {e}")


files = sorted(glob.glob(f"{CHART}/ci/*.yaml"))
if not files:
    fail("no values files in helm/keygate/ci")
for vf in files:
    check_values_file(vf)
check_restart_checksum()
check_sidecar_needs_backend()
check_shared_state_needs_secret()
print(f"chart: {len(files)} values files, {len(failures)} failures")
sys.exit(1 if failures else 0)
