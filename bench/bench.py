#!/usr/bin/env python3
"""trader-deploy benchmarks on the real bed: writes docs/benchmarks.md (`make bench`).

Everything measured runs for real: the static musl release binary (what the image holds) as a
GitHub Action (INPUT_* / GITHUB_* variables, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), the
bed's real helm 3 and helm 4 against the bed's kube-apiserver (kwok nodes), the GitHub stand-in
behind Prism. Nothing here types a figure: every number in the report comes from a run below.

The rollback race and the healthy-upgrade ratio run twice: on the kwok nodes (pod states from
kwok's stages) and on the bed's real node (containerd, runc, kubelet: a real failed pull, real
readiness probes).

Settings (environment): TD_BENCH_BIN (the binary, default the `make static` output),
TD_BENCH_RUNS (repetitions, default 3, at least 3), TD_BENCH_HELM_TIMEOUT (the baseline's
--timeout, default 5m), TD_BENCH_OUT (default docs/benchmarks.md), TD_BED_ENV (the bed's env file),
TD_BENCH_ONLY=real (only the real-node figures: rewrites just that section of the report);
TD_BENCH_ONLY=scale (only the 50- and 500-Deployment releases: rewrites that section).
"""

import datetime
import json
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get(
    "TD_BENCH_BIN",
    os.path.join(ROOT, "target/static/x86_64-unknown-linux-musl/release/trader-deploy"),
)
RUNS = max(3, int(os.environ.get("TD_BENCH_RUNS", "3")))
HELM_TIMEOUT = os.environ.get("TD_BENCH_HELM_TIMEOUT", "5m")
OUT = os.environ.get("TD_BENCH_OUT", os.path.join(ROOT, "docs/benchmarks.md"))
ENV_FILE = os.environ.get("TD_BED_ENV", os.path.join(ROOT, "target/testbed/env"))
CHART = os.path.join(ROOT, "testbed/charts/testapp")
STAMP = time.strftime("%H%M%S")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                env[k.strip()] = v.strip().strip("'\"")
    return env


BED = load_env(ENV_FILE)
KUBECONFIG = BED["KUBECONFIG"]
HELM = {3: BED["TD_HELM3"], 4: BED["TD_HELM4"]}


# --- the cluster, through the bed's kubeconfig (admin client certificate) -----------------------

def _kubeconfig_field(name):
    with open(KUBECONFIG) as f:
        m = re.search(rf"^\s*{name}:\s*(\S+)\s*$", f.read(), re.M)
    if not m:
        raise SystemExit(f"{KUBECONFIG} has no {name}")
    return m.group(1)


def kube(method, path, body=None):
    ctx = ssl.create_default_context(cafile=_kubeconfig_field("certificate-authority"))
    ctx.load_cert_chain(_kubeconfig_field("client-certificate"), _kubeconfig_field("client-key"))
    req = urllib.request.Request(
        _kubeconfig_field("server") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def delete_namespace(ns):
    try:
        kube("DELETE", f"/api/v1/namespaces/{ns}")
    except Exception as e:  # cleanup only
        log(f"delete namespace {ns}: {e}")


NAMESPACES = []
NODES = []


def kwok_nodes(pods):
    """Enough fake nodes for `pods` more pods (each kwok node takes 110, kubelet's default):
    Node objects annotated for kwok, which plays them; removed at the end of the bench."""
    for i in range((pods + 99) // 100):
        name = f"bench-kwok-{STAMP}-{len(NODES)}"
        kube("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
        })
        NODES.append(name)


def delete_nodes():
    for name in NODES:
        try:
            kube("DELETE", f"/api/v1/nodes/{name}")
        except Exception as e:  # cleanup only
            log(f"delete node {name}: {e}")


def namespace(prefix):
    ns = f"bench-{prefix}-{STAMP}-{len(NAMESPACES)}"
    NAMESPACES.append(ns)
    return ns


# --- processes ------------------------------------------------------------------------------------

class Done:
    def __init__(self, code, wall, cpu, stdout, stderr, outputs, summary):
        self.code, self.wall, self.cpu = code, wall, cpu
        self.stdout, self.stderr, self.outputs, self.summary = stdout, stderr, outputs, summary


def run(argv, env, cwd=None, deadline=900):
    """Runs argv; wall time, and the CPU time (user+sys) of it and every descendant it waited for
    (wait4's rusage of this one child, so parallel runs do not mix)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(deadline, p.kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Done(p.returncode, wall, ru.ru_utime + ru.ru_stime,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"), {}, "")


def helm_env(major, home):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
           "KUBECONFIG": KUBECONFIG}
    for k, d in (("CONFIG", "config"), ("CACHE", "cache"), ("DATA", "data")):
        env[f"HELM_{k}_HOME"] = os.path.join(home, f"helm{major}", d)
    return env


def helm(major, args, home, deadline=900):
    return run([HELM[major]] + args, helm_env(major, home), deadline=deadline)


def helm_status(major, release, ns, home):
    d = helm(major, ["status", release, "-n", ns, "-o", "json"], home, deadline=60)
    if d.code != 0:
        return None
    v = json.loads(d.stdout)
    return v["info"]["status"], v["version"]


def parse_outputs(text):
    out, lines = {}, iter(text.splitlines())
    for head in lines:
        if "<<" not in head:
            continue
        name, delim = head.split("<<", 1)
        value = []
        for line in lines:
            if line == delim:
                break
            value.append(line)
        out[name] = "\n".join(value)
    return out


def action(ws, inputs, extra_env=None, major=3, deadline=900):
    """One run of the real binary as a docker action would run it (only these variables)."""
    os.makedirs(ws, exist_ok=True)
    output, summary = os.path.join(ws, "output"), os.path.join(ws, "summary")
    for p in (output, summary):
        if os.path.exists(p):
            os.remove(p)
    with open(KUBECONFIG) as f:
        kubeconfig = f.read()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws,
        "GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": summary,
        "INPUT_ENVIRONMENT": "dev", "INPUT_VERIFY_IMAGES": "false", "INPUT_TIMEOUT": "300s",
        "INPUT_KUBECONFIG": kubeconfig, "INPUT_HELM": HELM[major],
    }
    env.update(helm_env(major, ws))
    env.pop("KUBECONFIG")
    for k, v in inputs.items():
        env["INPUT_" + k.upper()] = v
    env.update(extra_env or {})
    d = run([BIN], env, cwd=ws, deadline=deadline)
    d.outputs = parse_outputs(open(output).read()) if os.path.exists(output) else {}
    d.summary = open(summary).read() if os.path.exists(summary) else ""
    return d


def must(d, what, status=None):
    ok = d.code == 0 if status is None else d.outputs.get("status") == status
    if not ok:
        raise SystemExit(f"{what} failed (exit {d.code}, outputs {d.outputs}):\n"
                         f"{d.stdout[-4000:]}\n{d.stderr[-4000:]}")
    return d


# The chart's images in this bed's registry (a real node pulls them; the chart's default is the
# default bed's registry).
REPOS = {"image.repository": f"{BED['TD_REGISTRY']}/acme/python-orch",
         "scanner.image.repository": f"{BED['TD_REGISTRY']}/acme/go-scanner"}


def settings(tag, node):
    # The scanner StatefulSet as Parallel: with Kubernetes' default OrderedReady, helm's own
    # rollback (--atomic, --rollback-on-failure) never replaces its pod of the broken revision and
    # ends `failed` after both timeouts (issue 11), so there would be no race to time.
    s = {**REPOS, "image.tag": tag, "scanner.image.tag": tag, "scanner.podManagementPolicy": "Parallel"}
    if node == "real":
        s["realNode"] = "true"
    return s


def tags(tag, node="kwok"):
    return "\n".join(f"{k}={v}" for k, v in settings(tag, node).items())


def sets(tag, node="kwok"):
    return [a for k, v in settings(tag, node).items() for a in ("--set", f"{k}={v}")]


def median(xs):
    return statistics.median(xs)


def fmt(xs):
    return ", ".join(f"{x:.1f}" for x in xs)


# --- 1. time to a verified rollback of a broken image --------------------------------------------

def bench_rollback(work, node="kwok"):
    """Per repetition and tool: a fresh namespace with v1.0.0 installed and Ready, then
    `broken-pull` deployed; timed from the start of the command to its exit with the release back
    on a Ready v1.0.0 (verified after each run). `node`: kwok or real (the pods on the real node)."""
    helm_flag = {3: ["--atomic"], 4: ["--rollback-on-failure", "--wait=watcher"]}
    results = {"action": [], "helm3": [], "helm4": []}
    errors = []

    def baseline(major, i):
        try:
            ns = namespace(f"rb-{node}-h{major}")
            home = os.path.join(work, f"rb-{node}-h{major}-{i}")
            must(helm(major, ["upgrade", "--install", "app", CHART, "-n", ns, "--create-namespace",
                              "--wait", "--timeout", "120s"] + sets("v1.0.0", node), home),
                 f"helm {major} install v1.0.0")
            d = helm(major, ["upgrade", "--install", "app", CHART, "-n", ns, "--timeout", HELM_TIMEOUT]
                     + helm_flag[major] + sets("broken-pull", node), home, deadline=1200)
            st = helm_status(major, "app", ns, home)
            if d.code == 0 or st is None or st[0] != "deployed" or st[1] != 3:
                errors.append(f"helm {major} --atomic run {i}: exit {d.code}, status {st}")
            results[f"helm{major}"].append(d.wall)
            log(f"helm {major} atomic run {i} ({node}): {d.wall:.1f}s (exit {d.code}, status {st})")
        except BaseException as e:  # reported below
            errors.append(f"helm {major} run {i}: {e}")

    # The helm baselines wait out their --timeout; they run in parallel with each other and with
    # the action's sequential runs (they only wait: the API server serves their watches).
    threads = [threading.Thread(target=baseline, args=(m, i)) for m in (3, 4) for i in range(RUNS)]
    for t in threads:
        t.start()
    for i in range(RUNS):
        ns = namespace(f"rb-{node}-action")
        ws = os.path.join(work, f"rb-{node}-action-{i}")
        base = {"chart": CHART, "release": "app", "namespace": ns}
        must(action(ws, {**base, "version": "v1.0.0", "set": tags("v1.0.0", node)}), "action v1.0.0")
        d = action(ws, {**base, "version": "broken-pull", "set": tags("broken-pull", node)})
        must(d, "action broken-pull", status="rolled_back")
        st = helm_status(3, "app", ns, ws)
        if st != ("deployed", 3):
            raise SystemExit(f"after the action's rollback: {st}")
        results["action"].append(d.wall)
        log(f"action rollback run {i} ({node}): {d.wall:.1f}s")
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("helm baseline: " + "; ".join(errors))
    return results


# --- 2. healthy deploy ----------------------------------------------------------------------------

def bench_healthy(work, node="kwok"):
    """Per repetition and helm major: v1.0.0 installed (untimed), then the timed upgrade to
    v1.1.0 to Ready, by the action (with that helm) and by bare helm --wait. `node`: kwok or real
    (readiness from the kubelet's real probes)."""
    res = {f"{who}{m}": [] for who in ("action", "helm") for m in (3, 4)}
    for i in range(RUNS):
        for m in (3, 4):
            ns = namespace(f"ok-{node}-action-h{m}")
            ws = os.path.join(work, f"ok-{node}-action-h{m}-{i}")
            base = {"chart": CHART, "release": "app", "namespace": ns}
            must(action(ws, {**base, "version": "v1.0.0", "set": tags("v1.0.0", node)}, major=m),
                 "action v1.0.0")
            d = must(action(ws, {**base, "version": "v1.1.0", "set": tags("v1.1.0", node)}, major=m),
                     "action v1.1.0")
            res[f"action{m}"].append(d.wall)

            ns = namespace(f"ok-{node}-helm{m}")
            home = os.path.join(work, f"ok-{node}-helm{m}-{i}")
            up = ["upgrade", "--install", "app", CHART, "-n", ns, "--create-namespace", "--wait",
                  "--timeout", "120s"]
            must(helm(m, up + sets("v1.0.0", node), home), f"helm {m} v1.0.0")
            d = must(helm(m, up + sets("v1.1.0", node), home), f"helm {m} v1.1.0")
            res[f"helm{m}"].append(d.wall)
            log(f"healthy run {i} (helm {m}, {node}): action {res[f'action{m}'][-1]:.1f}s, "
                f"helm {d.wall:.1f}s")
    return res


# --- 3. a release of 50 Deployments ---------------------------------------------------------------

def fifty_chart(path, n=50):
    os.makedirs(os.path.join(path, "templates"), exist_ok=True)
    with open(os.path.join(path, "Chart.yaml"), "w") as f:
        f.write(f"apiVersion: v2\nname: scale{n}\nversion: 0.1.0\n")
    with open(os.path.join(path, "values.yaml"), "w") as f:
        # The control plane's own client rate limits (the controller-manager's 20 requests/s)
        # make 500 ReplicaSets and pods take minutes: the deadline grows with the release.
        f.write(f"count: {n}\nprogressDeadline: {max(60, n)}\n"
                f"image:\n  repository: {BED['TD_REGISTRY']}/acme/python-orch\n  tag: v1.0.0\n")
    with open(os.path.join(path, "templates/deployments.yaml"), "w") as f:
        f.write("""{{- range $i := until (int .Values.count) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $.Release.Name }}-svc-{{ $i }}
spec:
  replicas: 1
  progressDeadlineSeconds: {{ $.Values.progressDeadline }}
  selector:
    matchLabels: {app: {{ $.Release.Name }}-svc-{{ $i }}}
  template:
    metadata:
      labels: {app: {{ $.Release.Name }}-svc-{{ $i }}}
      annotations: {trader-deploy.test/version: {{ $.Values.image.tag | quote }}}
    spec:
      containers:
      - name: app
        image: "{{ $.Values.image.repository }}:{{ $.Values.image.tag }}"
{{- end }}
""")


def count_watches(stderr):
    """kube-client's debug span of each request it sends: `HTTP{http.method=GET
    http.url=…watch=true…}: requesting`."""
    lines = stderr.splitlines()
    reqs = [l for l in lines if l.rstrip().endswith("requesting")]
    watches = [l for l in reqs if "watch=true" in l]
    # hyper-util's connector logs each TCP connection it opens: `connecting to 127.0.0.1:…`.
    conns = [l for l in lines if "connecting to " in l]
    return len(watches), len(reqs), len(conns)


OWN = re.compile(r"own resources: user ([0-9.]+)s sys ([0-9.]+)s max_rss ([0-9]+)KiB")


def own_resources(stderr):
    """The action's own CPU seconds (helm excluded) and peak RSS in MiB, from its debug line."""
    m = OWN.search(stderr)
    if not m:
        raise SystemExit(f"no 'own resources' line in the debug log:\n{stderr[-3000:]}")
    return float(m.group(1)) + float(m.group(2)), int(m.group(3)) / 1024


SCALE = [int(x) for x in os.environ.get("TD_BENCH_SCALE", "50,500").split(",")]


def bench_fifty(work):
    """Releases of 50 and 500 Deployments on kwok, installed then upgraded: watch connections and
    the action's own CPU and memory side by side (they should not grow faster than linearly)."""
    rows = []
    for n in SCALE:
        chart = os.path.join(work, f"scale{n}")
        fifty_chart(chart, n)
        if n > 100:
            kwok_nodes(n)
        ns = namespace(f"scale{n}")
        ws = os.path.join(work, f"scale{n}-ws")
        for tag in ("v1.0.0", "v1.1.0"):
            d = action(ws, {"chart": chart, "release": f"scale{n}", "namespace": ns, "version": tag,
                            "set": f"image.tag={tag}", "timeout": "15m"},
                       extra_env={"TRADER_DEPLOY_LOG":
                                  "warn,trader_deploy=debug,kube_client=debug,hyper_util=debug"},
                       deadline=1200)
            must(d, f"{n} Deployments {tag}", status="success")
            w, r, c = count_watches(d.stderr)
            if w == 0 or c == 0:
                raise SystemExit(f"no watch or connection in the debug log:\n{d.stderr[-3000:]}")
            own_cpu, rss = own_resources(d.stderr)
            what = ("install" if tag == "v1.0.0" else "upgrade") + f" to {tag}"
            rows.append((n, what, d.wall, d.cpu, own_cpu, rss, w, c, r))
            log(f"scale{n} {tag}: {d.wall:.1f}s wall, {d.cpu:.2f}s CPU with helm, {own_cpu:.2f}s own, "
                f"{rss:.0f} MiB, {w} watches, {c} connections, {r} requests")
    return rows


# --- 4. GitHub API calls per deploy, by outcome ---------------------------------------------------

def standin(method, path, body=None):
    req = urllib.request.Request(BED["TD_GITHUB_STANDIN_URL"] + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read() or b"null")


def webhook_example(event):
    cache = os.environ.get("TRADER_DEPLOY_CACHE", os.path.expanduser("~/.cache/trader-deploy"))
    path = os.path.join(cache, "npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json")
    for e in json.load(open(path)):
        if e["name"] == event:
            for x in e["examples"]:
                if x.get("repository", {}).get("default_branch") == "main":
                    return x
    raise SystemExit(f"no {event} example")


def bench_github(work):
    with open(os.path.join(ROOT, "tests/fixtures/github/default.json")) as f:
        fixture = json.load(f)
    payload = webhook_example("workflow_dispatch")
    cases = [
        # (outcome, environment, run id, tag, extra inputs, expected status, deploy first)
        ("success (staging)", "staging", "1001", "v1.1.0", {}, "success", False),
        ("success (prod, approved)", "prod", "1001", "v1.1.0", {}, "success", False),
        ("rolled_back (staging, broken-pull)", "staging", "1001", "broken-pull", {}, "rolled_back", True),
        ("failed (staging, crashloop, no rollback)", "staging", "1001", "crashloop",
         {"rollback_on_failure": "false"}, "failed", True),
        ("refused (prod, run without approval)", "prod", "1002", "v1.1.0", {}, "failed", False),
    ]
    rows = []
    for i, (name, env_name, run_id, tag, extra, want, first) in enumerate(cases):
        ns = namespace("gh")
        ws = os.path.join(work, f"gh-{i}")
        os.makedirs(ws, exist_ok=True)
        base = {"chart": CHART, "release": "app", "namespace": ns}
        if first:
            must(action(ws, {**base, "version": "v1.0.0", "set": tags("v1.0.0")}), "first deploy")
        fx = json.loads(json.dumps(fixture))
        repo_name = f"bench-{STAMP}-{i}"
        fx["repository"]["name"] = repo_name
        full = standin("POST", "/_standin/repos", fx)["repo"]
        event = os.path.join(ws, "event.json")
        with open(event, "w") as f:
            json.dump(payload, f)
        gh = {"GITHUB_REPOSITORY": full, "GITHUB_API_URL": BED["GITHUB_API_URL"],
              "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": run_id,
              "GITHUB_RUN_ATTEMPT": "1", "GITHUB_ACTOR": "carol", "GITHUB_JOB": "deploy",
              "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
              "GITHUB_SHA": "ee3b2f7904fd6c989c87d6b5f7ecd382679612f4",
              "GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_EVENT_PATH": event}
        d = action(ws, {**base, "environment": env_name, "version": tag, "set": tags(tag),
                        "github_token": "ghs_bed_full", **extra}, extra_env=gh)
        must(d, name, status=want)
        prefix = f"/repos/{full}"
        entries = [e for e in standin("GET", f"/_standin/log?path_prefix={prefix}")
                   if e["path"] == prefix or e["path"].startswith(prefix + "/")]
        writes = sum(1 for e in entries if e["method"] != "GET")
        m = re.search(r"GitHub API calls: (\d+)", d.stdout)
        rows.append((name, len(entries), writes, m.group(1) if m else "not printed"))
        log(f"github {name}: {len(entries)} calls ({writes} writes)")
    return rows


# --- 5. binary, image, cold start -------------------------------------------------------------

def bench_static(work):
    size = os.path.getsize(BIN)
    helm_sizes = {m: os.path.getsize(HELM[m]) for m in (3, 4)}
    ca = "/etc/ssl/certs/ca-certificates.crt"
    ca_size = os.path.getsize(ca) if os.path.exists(ca) else 0
    ws = os.path.join(work, "cold")
    os.makedirs(ws, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws,
           "INPUT_MODE": "resolve", "INPUT_ENVIRONMENT": "dev", "INPUT_VERSION": "v1.0.0",
           "INPUT_CHART": CHART}
    probe = run([BIN], env, cwd=ws, deadline=60)
    if probe.code != 0:
        raise SystemExit(f"trader-deploy resolve failed: {probe.stdout}\n{probe.stderr}")
    cold = None
    if shutil.which("hyperfine"):
        export = os.path.join(work, "hyperfine.json")
        args = ["hyperfine", "-N", "--warmup", "3", "--runs", "50", "--export-json", export, BIN]
        d = run(args, env, cwd=ws, deadline=300)
        if d.code == 0:
            r = json.load(open(export))["results"][0]
            cold = ("hyperfine -N, 50 runs, 3 warm-up", r["median"] * 1000, r["mean"] * 1000,
                    r["stddev"] * 1000, r["min"] * 1000, r["max"] * 1000, probe.wall * 1000)
    if cold is None:
        times = [run([BIN], env, cwd=ws, deadline=60).wall * 1000 for _ in range(50)]
        cold = ("50 timed runs", median(times), statistics.mean(times), statistics.stdev(times),
                min(times), max(times), probe.wall * 1000)
    return size, helm_sizes, ca_size, cold


# --- the report -----------------------------------------------------------------------------------

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    helms = []
    for m in (3, 4):
        v = run([HELM[m], "version", "--short"], {"PATH": os.environ.get("PATH", "")}, deadline=30)
        helms.append(v.stdout.strip())
    head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], {"PATH": os.environ.get("PATH", "")}, deadline=30)
    dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml", "Cargo.lock"],
                {"PATH": os.environ.get("PATH", "")}, deadline=30)
    commit = head.stdout.strip() + (" with uncommitted changes in src/ (the tree is shared)"
                                     if dirty.stdout.strip() else "")
    return {"commit": commit, "nproc": os.cpu_count(), "cpu": cpu, "mem": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "helm": helms}


def mb(n):
    return f"{n / 1e6:.1f} MB"


REAL_BEGIN = "<!-- real-node: begin (bench/bench.py; TD_BENCH_ONLY=real rewrites this section) -->"
REAL_END = "<!-- real-node: end -->"


def real_node_section(real, started, took):
    """The real node's figures, as markdown lines between the markers."""
    rb, ok = real["rb"], real["ok"]
    a, h3, h4 = median(rb["action"]), median(rb["helm3"]), median(rb["helm4"])
    L = [REAL_BEGIN, "## On the real node", ""]
    w = L.append
    w(f"Measured on {started} UTC in {took / 60:.1f} min. The same two races on the bed's real node "
      f"({BED.get('TD_REAL_NODE', 'localhost')}: containerd 1.6, runc, kubelet v1.36.3; the test "
      "chart with `realNode=true`): real containers of the test app, readiness from the kubelet's "
      "real HTTP probes (every 2 s), a real failed pull (`broken-pull`: the registry lost the "
      f"image's layer). Medians of {RUNS} runs.")
    w("")
    w("| verified rollback of `broken-pull` | median | runs (s) | vs the action |")
    w("|---|---|---|---|")
    w(f"| trader-deploy (helm 3, timeout 300s) | **{a:.1f} s** | {fmt(rb['action'])} | 1× |")
    w(f"| `helm upgrade --install --atomic --timeout {HELM_TIMEOUT}` (helm 3) | **{h3:.1f} s** | "
      f"{fmt(rb['helm3'])} | {h3 / a:.1f}× slower |")
    w(f"| `helm upgrade --install --rollback-on-failure --wait=watcher --timeout {HELM_TIMEOUT}` "
      f"(helm 4) | **{h4:.1f} s** | {fmt(rb['helm4'])} | {h4 / a:.1f}× slower |")
    w("")
    w("| healthy upgrade v1.0.0 → v1.1.0 to Ready | median | runs (s) | action / helm |")
    w("|---|---|---|---|")
    for m in (3, 4):
        oa, oh = median(ok[f"action{m}"]), median(ok[f"helm{m}"])
        w(f"| trader-deploy with helm {m} | **{oa:.1f} s** | {fmt(ok[f'action{m}'])} | **{oa / oh:.2f}** |")
        w(f"| `helm upgrade --install --wait` (helm {m}) | **{oh:.1f} s** | {fmt(ok[f'helm{m}'])} | |")
    w("")
    w(REAL_END)
    return L


CI_BEGIN = "<!-- ci-timings: begin (measured by a clean-clone run of .ci/run; make bench keeps it) -->"
CI_END = "<!-- ci-timings: end -->"
SCALE_BEGIN = "<!-- scale: begin (bench/bench.py; TD_BENCH_ONLY=scale rewrites this section) -->"
SCALE_END = "<!-- scale: end -->"


def scale_section(fifty, started):
    """The 50- and 500-Deployment releases side by side, as markdown lines between markers."""
    L = [SCALE_BEGIN, "## Releases of 50 and 500 Deployments", ""]
    w = L.append
    w(f"Measured on {started} UTC. Generated charts of 50 and 500 Deployments (1 replica each, on "
      "kwok; the 500 get five more kwok nodes, 110 pods each), installed then upgraded by the "
      "action. CPU with helm: user+sys of the action and every child it waited for, from wait4(2)'s "
      "rusage. The action's own CPU and peak memory: its `getrusage(RUSAGE_SELF)` at exit (children, "
      "i.e. helm, excluded), from its debug line `own resources: …`. Watch requests: counted from "
      "the action's own debug log (`kube_client=debug`: kube-client logs every request it sends, a "
      "watch is a request with `watch=true`; re-watches after a timeout count again); hyper-util "
      "logs every TCP connection it opens (`connecting to …`). The rollout watch opens one stream "
      "per workload kind and namespace and one pod stream per namespace, so the count does not grow "
      "with the number of workloads; an event costs the workloads and pods it concerns. The wall "
      "time of the 500 is the bed's control plane (its controller-manager's 20 requests/s); helm's "
      "own connections are not in these counts.")
    w("")
    w("| Deployments | run | wall | CPU with helm | the action's own CPU | its peak RSS | watch requests | TCP connections opened | API requests in all |")
    w("|---|---|---|---|---|---|---|---|---|")
    for n, name, wall, cpu, own, rss, wa, conns, req in fifty:
        w(f"| {n} | {name} | {wall:.1f} s | {cpu:.2f} s | {own:.2f} s | {rss:.0f} MiB | {wa} | {conns} | {req} |")
    L.append(SCALE_END)
    return L


def write_section(lines, begin, end, what):
    """Rewrites one marked section of OUT (appends it before `## Reliability` if absent)."""
    text = open(OUT).read() if os.path.exists(OUT) else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + "\n".join(lines) + tail
    elif "## Reliability" in text:
        head, tail = text.split("## Reliability", 1)
        text = head + "\n".join(lines) + "\n\n## Reliability" + tail
    else:
        text = text + "\n" + "\n".join(lines) + "\n"
    with open(OUT, "w") as f:
        f.write(text)
    log(f"wrote the {what} section of {OUT}")


def write_real_only(real, started, took):
    write_section(real_node_section(real, started, took), REAL_BEGIN, REAL_END, "real-node")


def write_report(m, rb, ok, fifty, gh, st, started, took, real=None):
    size, helm_sizes, ca_size, cold = st
    a, h3, h4 = median(rb["action"]), median(rb["helm3"]), median(rb["helm4"])
    L = []
    w = L.append
    w("<!-- Written by `make bench` (bench/bench.py); do not edit by hand: re-run it. -->")
    w("# Benchmarks")
    w("")
    w(f"Measured by `make bench` on {started} UTC in {took / 60:.1f} min, on the bed (kube-apiserver "
      "v1.36 with kwok nodes, the bed's registry and GitHub stand-in behind Prism). The action is the "
      "static musl release binary (`make static`), run as a docker action runs it (INPUT_*/GITHUB_* "
      f"variables only); helm is the bed's real {m['helm'][0]} / {m['helm'][1]}. Medians of {RUNS} runs.")
    w("")
    w(f"Source: commit {m['commit']}.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPU: {m['cpu']}, nproc {m['nproc']} (shared with the bed and other work on it)")
    w(f"- memory: {m['mem']}")
    w(f"- kernel: {m['kernel']}")
    w("")
    w("## Time to a verified rollback of a broken image")
    w("")
    w("testbed/charts/testapp at v1.0.0 (Ready), then both images at `broken-pull` (pods stay in "
      "ErrImagePull/ImagePullBackOff). Timed from the command's start to its exit, with the release "
      "back at a Ready v1.0.0 (revision 3, `deployed`, checked after every run). The scanner "
      "StatefulSet runs with `podManagementPolicy: Parallel`: with Kubernetes' default OrderedReady, "
      "helm's own rollback never replaces the StatefulSet's broken pod and ends `failed` after both "
      "of its timeouts, so helm has no time to a verified rollback at all (the action deletes that "
      "pod: docs/deploy.md, \"StatefulSets after a rollback\").")
    w("")
    w("| tool | median | runs (s) | vs the action |")
    w("|---|---|---|---|")
    w(f"| trader-deploy (helm 3, timeout 300s) | **{a:.1f} s** | {fmt(rb['action'])} | 1× |")
    w(f"| `helm upgrade --install --atomic --timeout {HELM_TIMEOUT}` (helm 3) | **{h3:.1f} s** | "
      f"{fmt(rb['helm3'])} | {h3 / a:.1f}× slower |")
    w(f"| `helm upgrade --install --rollback-on-failure --wait=watcher --timeout {HELM_TIMEOUT}` "
      f"(helm 4) | **{h4:.1f} s** | {fmt(rb['helm4'])} | {h4 / a:.1f}× slower |")
    w("")
    w("helm waits for readiness until its timeout and only then rolls back; the action fails fast on "
      "the pods' ErrImagePull/ImagePullBackOff and rolls back at once, then verifies the rollback with "
      "the same watcher. The helm runs ran in parallel with each other and with the action's runs "
      "(they only wait), each on its own release and namespace.")
    w("")
    w("## Healthy deploy")
    w("")
    w("Upgrade of a Ready v1.0.0 to v1.1.0 (Deployment of 2 + StatefulSet of 1), until Ready. The "
      "action with smoke tests off (`smoke_tests` unset) and `verify_images: false` (no registry "
      "lookups), no GitHub; bare helm with `--wait` (helm 4: its default watcher strategy).")
    w("")
    w("| tool | median | runs (s) | action / helm |")
    w("|---|---|---|---|")
    for m in (3, 4):
        oa, oh = median(ok[f"action{m}"]), median(ok[f"helm{m}"])
        w(f"| trader-deploy with helm {m} | **{oa:.1f} s** | {fmt(ok[f'action{m}'])} | **{oa / oh:.2f}** |")
        w(f"| `helm upgrade --install --wait` (helm {m}) | **{oh:.1f} s** | {fmt(ok[f'helm{m}'])} | |")
    w("")
    w("The action also takes a Lease, reads the history, checks for a stuck release, watches every "
      "workload and its pods (failing fast), and writes the summary and outputs.")
    w("")
    L.extend(scale_section(fifty, started))
    w("")
    w("## GitHub API calls per deploy, by outcome")
    w("")
    w("Counted from the stand-in's request log (`GET /_standin/log`, this run's repository only), "
      "each outcome in a repository of its own, through Prism; \"reported\" is the count the action "
      "prints itself.")
    w("")
    w("| outcome | calls | of which writes | reported by the action |")
    w("|---|---|---|---|")
    for name, n, writes, reported in gh:
        w(f"| {name} | {n} | {writes} | {reported} |")
    w("")
    w("## Binary, image, cold start")
    w("")
    image = size + helm_sizes[3] + ca_size
    w(f"- static musl release binary (`make static`, stripped): **{mb(size)}** ({size} bytes)")
    w(f"- helm as built for the bed (`-s -w`, like the Dockerfile's): helm 3 {mb(helm_sizes[3])}, "
      f"helm 4 {mb(helm_sizes[4])}")
    w(f"- CA certificates (this machine's bundle; the image copies Alpine's): {mb(ca_size)}")
    w(f"- expected image size (FROM scratch: binary + helm + CA bundle): **{mb(image)}** with helm 3, "
      f"{mb(size + helm_sizes[4] + ca_size)} with helm 4")
    label, med, mean, sd, lo, hi, first = cold
    w(f"- start-up, `trader-deploy` in mode `resolve` (process start to exit: parse the inputs, "
      f"resolve the plan, write the summary; no network) — {label}: median **{med:.1f} ms**, mean "
      f"{mean:.1f} ± {sd:.1f} ms, min {lo:.1f}, max {hi:.1f}; the first run of the bench (binary "
      f"maybe not yet in the page cache): {first:.1f} ms. The machine's page cache is not dropped "
      "(it is shared).")
    w("")
    if real:
        L.extend(real_node_section(real, started, took))
        w("")
    w("## Reliability")
    w("")
    w("What the e2e suites prove on the bed (`make test` runs them; `make soak` the long ones):")
    w("")
    w("| property | test |")
    w("|---|---|")
    for prop, test in RELIABILITY:
        w(f"| {prop} | {test} |")
    w("")
    w("## Reproduce")
    w("")
    w("```")
    w("make bench                   # builds the static binary, uses the running bed (or brings one up), writes this file")
    w("TD_BENCH_ONLY=real make bench   # only the real node's races: rewrites that section")
    w("TD_BENCH_RUNS=5 make bench   # more repetitions")
    w("make soak                    # the apiserver-restart tests, on a bed of their own (target/testbed-soak)")
    w("testbed/with-bed.sh cargo test --features bed --test bed_reliability   # the fast reliability suite")
    w("```")
    w("")
    w("Settings: `TD_BENCH_RUNS` (default 3), `TD_BENCH_HELM_TIMEOUT` (the helm baseline's `--timeout`, "
      "default 5m), `TD_BENCH_BIN`, `TD_BENCH_OUT`. The harness is bench/bench.py (Python 3 stdlib, "
      "hyperfine if installed: `apt-get install hyperfine`).")
    w("")
    # The CI timings are measured by a clean-clone run of .ci/run, not by the bench: kept as they are.
    old = open(OUT).read() if os.path.exists(OUT) else ""
    if CI_BEGIN in old and CI_END in old:
        L.append(CI_BEGIN + old.split(CI_BEGIN, 1)[1].split(CI_END, 1)[0] + CI_END)
        w("")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(L))
    log(f"wrote {OUT}")


RELIABILITY = [
    ("kube-apiserver killed (SIGKILL) and restarted mid-rollout: the outcome is still right "
     "(healthy → success; never-ready → rolled back, verified)",
     "tests/bed_soak.rs `apiserver_restart_mid_rollout_healthy_upgrade_succeeds`, "
     "`apiserver_restart_mid_rollout_failure_is_rolled_back` (`make soak`, on a bed of its own)"),
    ("GitHub 502, and 403 secondary rate limit with Retry-After: retried, no duplicate deployment",
     "tests/bed_github_action.rs `a_502_then_success_is_retried`, `retries_are_bounded`, "
     "`a_rerun_makes_no_duplicate_deployment`"),
    ("SIGTERM mid-upgrade: no release left pending",
     "tests/bed_deploy.rs `sigterm_during_upgrade_leaves_no_pending_state_helm{3,4}`, "
     "`sigterm_during_watch_rolls_back_helm{3,4}`"),
    ("a release stuck beforehand (pending-upgrade): recovered",
     "tests/bed_deploy.rs `pending_upgrade_is_recovered_helm{3,4}`"),
    ("concurrent deploys of one release: serialized",
     "tests/bed_deploy.rs `concurrent_deploys_are_serialized_helm{3,4}`, "
     "`a_held_lease_blocks_until_the_timeout`, `an_expired_lease_is_taken_over`"),
    ("a rollback that itself fails (the previous revision crash-loops): outcome `failed`, "
     "GitHub deployment status `error`, one `Rollback failed` error naming both failures",
     "tests/bed_reliability.rs `a_rollback_that_fails_is_failed_with_status_error`"),
    ("bad inputs (at least 40, asserted): the documented one-line error, exit 1, the cluster "
     "untouched (helm history unchanged, no namespace created, no lease left; a valid control run "
     "does change it)",
     "tests/bed_reliability.rs `bad_inputs_leave_the_cluster_untouched`"),
    ("canary secrets (GitHub token, kubeconfig comment and credential fields, registry password) "
     "never in stdout, stderr (debug log on), the summary or the outputs of a success and a "
     "rolled-back run", "tests/bed_reliability.rs `canaries_never_leak_success`, "
     "`canaries_never_leak_rolled_back`"),
]


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: run `make static`")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="td-bench-")
    only_real = os.environ.get("TD_BENCH_ONLY") == "real"
    if "TD_REAL_NODE" not in BED and only_real:
        raise SystemExit("TD_BENCH_ONLY=real: the bed runs without its real node")
    try:
        if os.environ.get("TD_BENCH_ONLY") == "scale":
            # The scale releases alone: TD_BENCH_ONLY=scale make bench rewrites that section.
            write_section(scale_section(bench_fifty(work), started), SCALE_BEGIN, SCALE_END, "scale")
            return
        if only_real:
            ok = bench_healthy(work, "real")
            rb = bench_rollback(work, "real")
            write_real_only({"rb": rb, "ok": ok}, started, time.monotonic() - t0)
            return
        m = machine()
        st = bench_static(work)
        log("binary/cold start done")
        gh = bench_github(work) if "TD_GITHUB_STANDIN_URL" in BED else []
        ok = bench_healthy(work)
        fifty = bench_fifty(work)
        rb = bench_rollback(work)
        real = None
        if "TD_REAL_NODE" in BED:
            real = {"ok": bench_healthy(work, "real"), "rb": bench_rollback(work, "real")}
        write_report(m, rb, ok, fifty, gh, st, started, time.monotonic() - t0, real)
    finally:
        for ns in NAMESPACES:
            delete_namespace(ns)
        delete_nodes()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
