#!/usr/bin/python3
"""The deployment files under deploy/, checked against a real dtmd and then run.

- deploy/k8s and deploy/k8s/dev rendered with `kubectl kustomize`: every --flag of the dtmd
  container and every DTM_* variable it gets is one of dtmd's (as `dtmd --helpfull` lists
  them); probes, container ports and the Service's target ports are ports dtmd serves with the
  listen addresses the manifest sets; the Secret key the Deployment reads exists in the dev
  overlay, whose connection string names its PostgreSQL Service; terminationGracePeriodSeconds
  outlasts --shutdown_grace; the security context, spread, disruption budget and resources.
- deploy/docker/Dockerfile: every shared library `ldd` lists for dtmd and dtmctl comes from a
  package the runtime stage installs (or one apt brings with them; dpkg -S maps libraries to
  packages, apt-cache depends follows dependencies), each library they link directly is named
  there; the build packages are scripts/setup.sh's; exec-form ENTRYPOINT, numeric non-root
  USER, EXPOSE of both ports, STOPSIGNAL SIGTERM.
- deploy/systemd: `systemd-analyze verify` when there is one, the unit's flags and settings,
  the example environment file's variables.
- deploy/grafana: valid JSON, a ${DS_PROMETHEUS} input, only (and all) the metric names dtmd
  exports, each of them in the running replicas' /metrics.
- Then the rendered dev Deployment is run as its container would run: three replicas of dtmd
  with the manifest's arguments and environment on the test run's PostgreSQL (DTM_TEST_PG in
  place of the Secret's connection string), each as PID 1 of its own PID namespace when
  unshare allows, probed with the probes' own gRPC health checks, a saga through one replica
  seen from the others, a two-phase message back-checked by them, then SIGTERM to each:
  readiness must turn NOT_SERVING (or the connection be refused) and dtmd exit 0 within
  terminationGracePeriodSeconds.

Usage: see tests/deploy/CMakeLists.txt.
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_support import (TIMEOUT, check, parse_args, procs, run,  # noqa: E402
                         serve_branches, wait_until)

args = parse_args("dtmd", "dtmctl", "gen", "source", "kubectl", "protoc", "grpc_python_plugin",
                  "health_proto")
import grpc  # noqa: E402
import yaml  # noqa: E402
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

SRC = args.source
DEPLOY = os.path.join(SRC, "deploy")
# The metric names deploy/grafana/dtmd-dashboard.json may use: what dtmd exports
# (server/metrics/metrics.h) and the standard process metrics.
METRICS = {
    "dtm_transactions_started_total", "dtm_transactions_finished_total",
    "dtm_branch_calls_total", "dtm_branch_call_duration_seconds",
    "dtm_store_commit_duration_seconds", "dtm_store_commit_batch_size", "dtm_store_queue_length",
    "dtm_transactions_pending", "dtm_transactions_in_memory", "dtm_recovery_claimed_total",
    "dtm_lease_renewals_total", "dtm_lease_losses_total", "dtm_back_checks_total",
    "dtm_api_requests_total", "process_cpu_seconds_total", "process_resident_memory_bytes",
}
# Libraries of the base image's own packages (libc, libm, ld-linux, libstdc++, libgcc_s).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


# --- dtmd's flags, from dtmd itself -------------------------------------------------------

def dtmd_flags(dtmd):
    """{flag name: {"env": "DTM_X" or None, "default": text, "bool": bool}} from `dtmd
    --helpfull`, which prints each flag as `--name (help ... (env DTM_X)); default: value;`
    wrapped over several lines."""
    out = subprocess.run([dtmd, "--helpfull"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=TIMEOUT).stdout
    flags = {}
    entries = re.split(r"\n\s+(?=--\w+ \()", out)
    for entry in entries[1:]:
        entry = entry.split("\n\n")[0]  # the last flag of a file ends at a blank line
        text = " ".join(entry.split())
        m = re.match(r"--(\w+) \((.*)\); default: (.*);$", text)
        if not m:
            continue
        name, help_text, default = m.groups()
        env = re.search(r"\(env (DTM_\w+)\)", help_text)
        default = default[1:-1] if default.startswith('"') else default
        flags[name] = {"env": env.group(1) if env else None, "default": default,
                       "bool": default in ("true", "false")}
    return flags


def parse_duration(text):
    """Seconds in an Abseil duration ("5s", "1m30s", "500ms"); None if it is not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_args_flags(argv, flags):
    """[(name, value or None, index)] of the --flags in `argv` (--name=value, --name value,
    --name and --noname for booleans); names are returned as written."""
    found = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if not eq:
                value = None
                base = name[2:] if name.startswith("no") and name[2:] in flags else name
                if base in flags and not flags[base]["bool"] and i + 1 < len(argv):
                    value = argv[i + 1]
                    i += 1
                elif base != name:
                    name, value = base, "false"
                elif name in flags and flags[name]["bool"]:
                    value = "true"
            found.append((name, value, i))
        i += 1
    return found


def effective(name, flags, argv, env):
    """The value dtmd uses for flag `name`: the command line, else its DTM_* variable, else
    its default."""
    for n, v, _ in parse_args_flags(argv, flags):
        if n == name:
            return v
    var = flags[name]["env"]
    if var and env.get(var):
        return env[var]
    return flags[name]["default"]


def port_of(listen):
    return int(listen.rsplit(":", 1)[1]) if listen and ":" in listen else None


# --- Kubernetes manifests -----------------------------------------------------------------

def render(path):
    """(return code, stderr, documents) of `kubectl kustomize path`."""
    try:
        r = subprocess.run([args.kubectl, "kustomize", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    except OSError as e:
        return 127, "%s (scripts/setup.sh installs kubectl)" % e, []
    docs = []
    if r.returncode == 0:
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    return r.returncode, r.stderr.strip(), docs


def find(docs, kind, name=None):
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    return None


def expand(value, env):
    """Kubernetes' $(VAR) expansion of an env value: variables defined before it are replaced,
    $$ is a literal $, anything else stays as written."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def container_env(container, docs, secret_value, field_value):
    """The container's environment as the kubelet builds it: envFrom first, then env in order
    (later wins), values expanded. secret_value(name, key) and field_value(path) stand for
    Secrets and the downward API. Returns (env, [problems])."""
    env, problems = {}, []
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            cm = find(docs, "ConfigMap", source["configMapRef"]["name"])
            if cm is None:
                problems.append("envFrom ConfigMap %s is not rendered" % source["configMapRef"])
                continue
            env.update({prefix + k: str(v) for k, v in (cm.get("data") or {}).items()})
        if "secretRef" in source:
            problems.append("envFrom secretRef %s: only secretKeyRef is expected" % source)
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom", {})
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            env[name] = secret_value(ref["name"], ref["key"])
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = find(docs, "ConfigMap", ref["name"]) or {}
            if ref["key"] not in (cm.get("data") or {}):
                problems.append("%s: ConfigMap key %s not rendered" % (name, ref))
            env[name] = str((cm.get("data") or {}).get(ref["key"], ""))
        elif "fieldRef" in vf:
            env[name] = field_value(vf["fieldRef"]["fieldPath"])
        else:
            problems.append("%s: unexpected valueFrom %s" % (name, vf))
    return env, problems


def secret_keys(docs, name):
    s = find(docs, "Secret", name)
    if s is None:
        return None
    return set((s.get("data") or {}).keys()) | set((s.get("stringData") or {}).keys())


def secret_string(docs, name, key):
    import base64
    s = find(docs, "Secret", name) or {}
    if key in (s.get("stringData") or {}):
        return str(s["stringData"][key])
    if key in (s.get("data") or {}):
        return base64.b64decode(s["data"][key]).decode()
    return None


def conninfo_host_port(conninfo):
    """(host, port) of a libpq connection string, key=value or URL."""
    m = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/?,]+)(?::(\d+))?", conninfo)
    if m:
        return m.group(1), int(m.group(2) or 5432)
    kv = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", conninfo))
    return kv.get("host"), int(kv.get("port", 5432))


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_manifests(flags, base_docs, dev_docs, docker):
    """Static checks of the rendered Deployment and its neighbours. Returns what the live run
    needs: the dev render's dtmd container, pod spec and secret reference."""
    for label, docs in (("deploy/k8s", base_docs), ("deploy/k8s/dev", dev_docs)):
        dep = find(docs, "Deployment", "dtmd")
        check(dep is not None, "%s renders the Deployment dtmd" % label)
        if dep is None:
            continue
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        labels = pod["metadata"].get("labels", {})
        containers = [c for c in spec["containers"] if c["name"] == "dtmd"]
        check(len(containers) == 1, "%s: one container named dtmd" % label)
        if not containers:
            continue
        c = containers[0]
        argv = c.get("args", [])
        names = [n for n, _, _ in parse_args_flags(argv, flags)]
        bad = [n for n in names if n not in flags]
        check(not bad and all(a.startswith("--") for a in argv),
              "%s: every container arg is a dtmd flag (%s)%s" % (
                  label, " ".join(argv), " unknown: %s" % bad if bad else ""))
        known_env = {f["env"] for f in flags.values() if f["env"]}
        env, problems = container_env(c, docs, lambda n, k: "<secret %s/%s>" % (n, k),
                                      lambda p: "<field %s>" % p)
        check(not problems, "%s: env and envFrom resolve %s" % (label, problems or ""))
        dtm_vars = sorted(v for v in env if v.startswith("DTM_"))
        unknown = [v for v in dtm_vars if v not in known_env]
        check(dtm_vars and not unknown, "%s: every DTM_* variable is a dtmd flag's (%s)%s" % (
            label, " ".join(dtm_vars), " unknown: %s" % unknown if unknown else ""))
        if "command" in c:
            check(c["command"] == docker["entrypoint"],
                  "%s: command is the image's entrypoint" % label)

        grpc_port = port_of(effective("listen", flags, argv, env))
        http_port = port_of(effective("http_listen", flags, argv, env))
        served = {grpc_port: "grpc", http_port: "http"}
        check(grpc_port and http_port, "%s: dtmd serves gRPC on %s and HTTP on %s" % (
            label, grpc_port, http_port))
        named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        check(sorted(named.values()) == sorted(p for p in served if p),
              "%s: container ports %s are the ports dtmd serves" % (label, sorted(named.values())))
        check(set(named.values()) == set(docker["expose"]),
              "%s: container ports are the image's EXPOSE %s" % (label, docker["expose"]))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            check(p is not None and "grpc" in p, "%s: %s is a gRPC probe" % (label, probe))
            if p and "grpc" in p:
                check(served.get(p["grpc"]["port"]) == "grpc",
                      "%s: %s probes port %s, dtmd's gRPC port" % (label, probe, p["grpc"]["port"]))
        ready = c.get("readinessProbe", {}).get("grpc", {})
        check(ready.get("service") == "dtm.v1.Coordinator",
              "%s: readiness asks for dtm.v1.Coordinator" % label)
        annotations = pod["metadata"].get("annotations", {})
        if "prometheus.io/port" in annotations:
            check(served.get(int(annotations["prometheus.io/port"])) == "http",
                  "%s: prometheus.io/port is dtmd's HTTP port" % label)

        svc = find(docs, "Service", "dtmd")
        check(svc is not None and selects(svc["spec"].get("selector"), labels),
              "%s: Service dtmd selects the pods" % label)
        if svc:
            for sp in svc["spec"]["ports"]:
                target = sp.get("targetPort", sp["port"])
                target = named.get(target, target) if isinstance(target, str) else target
                check(target in served and (sp.get("appProtocol") != "grpc" or
                                            served[target] == "grpc"),
                      "%s: Service port %s (%s) targets %s, served by dtmd (%s)" % (
                          label, sp["port"], sp.get("appProtocol"), target, served.get(target)))
            check(any(sp.get("appProtocol") == "grpc" for sp in svc["spec"]["ports"]),
                  "%s: the Service's gRPC port says appProtocol: grpc" % label)

        shutdown_arg = [v for n, v, _ in parse_args_flags(argv, flags) if n == "shutdown_grace"]
        grace = parse_duration(effective("shutdown_grace", flags, argv, env))
        period = spec.get("terminationGracePeriodSeconds", 30)
        check(shutdown_arg and grace is not None and period > grace,
              "%s: terminationGracePeriodSeconds %s > --shutdown_grace %s (set in args: %s)" % (
                  label, period, grace, bool(shutdown_arg)))

        sc = dict(spec.get("securityContext", {}))
        sc.update(c.get("securityContext", {}))
        check(sc.get("runAsNonRoot") is True and isinstance(sc.get("runAsUser"), int) and
              sc["runAsUser"] != 0 and sc.get("readOnlyRootFilesystem") is True and
              sc.get("allowPrivilegeEscalation") is False and
              "ALL" in sc.get("capabilities", {}).get("drop", []) and
              sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              "%s: securityContext: non-root uid %s, read-only root, no privilege escalation, "
              "no capabilities, RuntimeDefault seccomp" % (label, sc.get("runAsUser")))
        check(sc.get("runAsUser") == docker["uid"],
              "%s: runAsUser is the image's USER %s" % (label, docker["uid"]))
        res = c.get("resources", {})
        mem_limit = res.get("limits", {}).get("memory", "")
        m = re.match(r"^(\d+)(Mi|Gi)$", str(mem_limit))
        mib = int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1) if m else 0
        check(all(k in res.get(kind, {}) for kind in ("requests", "limits")
                  for k in ("cpu", "memory")) and mib > 63,
              "%s: cpu and memory requests and limits, memory limit %s above the measured "
              "63 MiB" % (label, mem_limit))

        check(dep["spec"].get("replicas") == 3, "%s: 3 replicas" % label)
        spread = [t for t in spec.get("topologySpreadConstraints", [])
                  if t.get("topologyKey") == "kubernetes.io/hostname"]
        check(spread and selects(spread[0].get("labelSelector", {}).get("matchLabels"), labels),
              "%s: replicas spread over kubernetes.io/hostname" % label)
        pdb = find(docs, "PodDisruptionBudget")
        ok = pdb is not None and selects(pdb["spec"].get("selector", {}).get("matchLabels"),
                                         labels)
        if ok:
            s = pdb["spec"]
            ok = (s.get("maxUnavailable") == 1 or
                  (isinstance(s.get("minAvailable"), int) and 1 <= s["minAvailable"] < 3))
        check(ok, "%s: a PodDisruptionBudget lets one replica go at a time" % label)

    # The Secret: the base reads it but does not create it; the dev overlay does.
    dep = find(dev_docs, "Deployment", "dtmd")
    if dep is None:
        return None
    c = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "dtmd"][0]
    refs = [(e["name"], e["valueFrom"]["secretKeyRef"]) for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})]
    check(refs == [("DTM_STORE", refs[0][1])] if refs else False,
          "the Deployment reads DTM_STORE (only) from a Secret: %s" % refs)
    ref = refs[0][1] if refs else {"name": "?", "key": "?"}
    check(secret_keys(base_docs, ref["name"]) is None,
          "deploy/k8s does not create Secret %s (applying it never overwrites yours)" %
          ref["name"])
    keys = secret_keys(dev_docs, ref["name"]) or set()
    check(ref["key"] in keys, "deploy/k8s/dev's Secret %s has key %s" % (ref["name"], ref["key"]))
    conninfo = secret_string(dev_docs, ref["name"], ref["key"]) or ""
    host, port = conninfo_host_port(conninfo)
    pg_svc = find(dev_docs, "Service", host) if host else None
    check(pg_svc is not None and port in [p["port"] for p in pg_svc["spec"]["ports"]],
          "deploy/k8s/dev: DTM_STORE names Service %s port %s" % (host, port))
    sts = find(dev_docs, "StatefulSet")
    check(sts is not None and pg_svc is not None and
          selects(pg_svc["spec"].get("selector"), sts["spec"]["template"]["metadata"]["labels"])
          and any(str(x.get("image", "")).startswith("postgres:15")
                  for x in sts["spec"]["template"]["spec"]["containers"]),
          "deploy/k8s/dev: that Service selects a PostgreSQL 15 StatefulSet")
    return {"container": c, "pod": dep["spec"]["template"], "secret": ref, "docs": dev_docs}


def check_examples():
    path = os.path.join(DEPLOY, "k8s", "examples", "branch-headless-service.yaml")
    with open(path) as f:
        text = f.read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    check(len(docs) == 1 and docs[0]["kind"] == "Service" and
          docs[0]["spec"].get("clusterIP") == "None" and "dns:///" in text,
          "examples/branch-headless-service.yaml: a headless Service, with its dns:/// target")
    used = []
    for root, _, files in os.walk(os.path.join(DEPLOY, "k8s")):
        if "kustomization.yaml" in files:
            with open(os.path.join(root, "kustomization.yaml")) as f:
                k = yaml.safe_load(f)
            used += [os.path.normpath(os.path.join(root, r))
                     for key in ("resources", "bases") for r in k.get(key, [])]
    check(not any(u.startswith(os.path.join(DEPLOY, "k8s", "examples")) for u in used),
          "no kustomization uses the examples")


# --- Dockerfile ---------------------------------------------------------------------------

def parse_dockerfile(path):
    """[(FROM argument, [(instruction, argument)])] per stage; continuation lines joined,
    comments dropped."""
    with open(path) as f:
        lines = [line for line in f.read().split("\n") if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    stages = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        rest = " ".join(rest.split())
        if instr == "FROM":
            stages.append((rest, []))
        elif stages:
            stages[-1][1].append((instr, rest))
    return stages


def apt_installs(instructions):
    pkgs = []
    for instr, rest in instructions:
        if instr != "RUN":
            continue
        for part in re.split(r"&&|;|\|\|", rest):
            words = part.split()
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def setup_packages():
    with open(os.path.join(SRC, "scripts", "setup.sh")) as f:
        text = f.read()
    block = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M).group(1)
    words = " ".join(line.split("#")[0] for line in block.split("\n")).split()
    return set(words) | {"kubernetes-client", "nodejs", "npm"}


def library_packages(binaries):
    """{library path: package} for every library ldd lists for `binaries` (None when dpkg
    knows none), and {binary: [NEEDED sonames]}."""
    libs, needed = {}, {}
    for b in binaries:
        out = subprocess.run(["ldd", b], stdout=subprocess.PIPE, text=True).stdout
        for line in out.split("\n"):
            m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                path = m.group(m.lastindex)
                libs[path] = None
        dyn = subprocess.run(["readelf", "-d", b], stdout=subprocess.PIPE, text=True).stdout
        needed[b] = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", dyn)
    candidates = {}
    for path in libs:
        alts = {path, os.path.realpath(path)}
        for p in list(alts):
            if p.startswith("/usr/"):
                alts.add(p[4:])
            else:
                alts.add("/usr" + p)
        candidates[path] = alts
    every = sorted(set().union(*candidates.values())) if candidates else []
    out = subprocess.run(["dpkg", "-S"] + every, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    owner = {}
    for line in out.split("\n"):
        if ": " in line:
            pkgs, p = line.rsplit(": ", 1)
            owner[p] = pkgs.split(",")[0].strip().split(":")[0]
    for path, alts in candidates.items():
        for a in alts:
            if a in owner:
                libs[path] = owner[a]
    return libs, needed


def apt_closure(packages):
    """Every package apt installs with `packages` (Depends and Pre-Depends, recursively)."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + list(packages),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    names = set()
    for line in out.stdout.split("\n"):
        if line and not line.startswith(" "):
            names.add(line.strip().strip("<>").split(":")[0])
        m = re.match(r"\s+\|?(?:Pre)?Depends: <?([^>\s]+)>?", line)
        if m:
            names.add(m.group(1).split(":")[0])
    return names, out.returncode, out.stderr.strip()


def check_dockerfile():
    path = os.path.join(DEPLOY, "docker", "Dockerfile")
    stages = parse_dockerfile(path)
    check(len(stages) >= 2, "Dockerfile: multi-stage (%d stages)" % len(stages))
    check(all(re.match(r"debian:(12|bookworm)(-slim)?(@|$)", s[0].split()[0]) for s in stages),
          "Dockerfile: every stage is Debian 12 (%s)" % [s[0] for s in stages])
    build, runtime = stages[0][1], stages[-1][1]
    build_cmds = " ".join(rest for instr, rest in build if instr == "RUN")
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        cmake_text = f.read()
    for opt in ("DTM_BUILD_TESTS", "DTM_BUILD_EXAMPLES"):
        check("-D%s=OFF" % opt in build_cmds and "option(%s " % opt in cmake_text,
              "Dockerfile: builds with -D%s=OFF, an option of CMakeLists.txt" % opt)
    check("-G Ninja" in build_cmds, "Dockerfile: builds with Ninja")
    build_pkgs = apt_installs(build)
    extra = sorted(set(build_pkgs) - setup_packages())
    check(build_pkgs and not extra,
          "Dockerfile: the build stage's packages are scripts/setup.sh's%s" % (
              " (not there: %s)" % extra if extra else ""))

    runtime_pkgs = apt_installs(runtime)
    check("ca-certificates" in runtime_pkgs, "Dockerfile: runtime has ca-certificates")
    dev = [p for p in runtime_pkgs if p.endswith("-dev") or p in ("build-essential", "cmake")]
    check(runtime_pkgs and not dev, "Dockerfile: runtime installs no build package %s" % dev)
    libs, needed = library_packages([args.dtmd, args.dtmctl])
    unowned = sorted(p for p, pkg in libs.items() if pkg is None)
    check(libs and not unowned, "ldd: dpkg -S knows the package of each of the %d libraries "
          "dtmd and dtmctl load%s" % (len(libs), " (not: %s)" % unowned if unowned else ""))
    closure, rc, err = apt_closure(runtime_pkgs)
    check(rc == 0, "apt-cache depends knows the runtime packages %s" % (err or ""))
    missing = sorted({"%s (%s)" % (pkg, os.path.basename(p)) for p, pkg in libs.items()
                      if pkg and pkg not in closure and pkg not in BASE_IMAGE_PACKAGES})
    check(not missing, "Dockerfile: the runtime stage installs (with what apt brings) the "
          "package of every library ldd lists%s" % (": missing %s" % missing if missing else ""))
    by_soname = {os.path.basename(p): pkg for p, pkg in libs.items()}
    direct = sorted({by_soname.get(s) or s for sonames in needed.values() for s in sonames})
    unnamed = [p for p in direct if p not in runtime_pkgs and p not in BASE_IMAGE_PACKAGES]
    check(direct and not unnamed, "Dockerfile: the runtime stage names each package dtmd and "
          "dtmctl link directly (%s)%s" % (" ".join(direct),
                                            ": not named %s" % unnamed if unnamed else ""))

    last = {}
    for instr, rest in runtime:
        last.setdefault(instr, []).append(rest)
    entry = (last.get("ENTRYPOINT") or [""])[-1]
    try:
        entrypoint = json.loads(entry)
    except ValueError:
        entrypoint = None
    check(isinstance(entrypoint, list) and entrypoint[:1] == ["/usr/local/bin/dtmd"],
          "Dockerfile: ENTRYPOINT in exec form, dtmd itself: %s" % entry)
    copies = [c for c in last.get("COPY", []) if "--from=" in c]
    check(any("dtmd" in c and c.split()[-1].rstrip("/") == "/usr/local/bin" for c in copies),
          "Dockerfile: dtmd is copied from the build stage to /usr/local/bin")
    user = (last.get("USER") or [""])[-1].split(":")[0]
    check(user.isdigit() and int(user) != 0, "Dockerfile: USER is a numeric non-root uid (%s)" %
          user)
    expose = sorted(int(p.split("/")[0]) for e in last.get("EXPOSE", []) for p in e.split())
    check({36789, 36790} <= set(expose), "Dockerfile: EXPOSE %s" % expose)
    stop = (last.get("STOPSIGNAL") or [""])[-1]
    check(stop in ("SIGTERM", "15"), "Dockerfile: STOPSIGNAL %s" % stop)
    return {"entrypoint": entrypoint or [], "uid": int(user) if user.isdigit() else None,
            "expose": expose}


# --- systemd ------------------------------------------------------------------------------

def check_systemd(flags):
    unit_path = os.path.join(DEPLOY, "systemd", "dtmd.service")
    settings = {}
    section = None
    with open(unit_path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            settings.setdefault((section, k.strip()), []).append(v.strip())

    def get(key, section="Service"):
        return (settings.get((section, key)) or [None])[-1]

    exec_start = (get("ExecStart") or "").split()
    argv = exec_start[1:]
    names = [n for n, _, _ in parse_args_flags(argv, flags)]
    bad = [n for n in names if n not in flags]
    check(exec_start[:1] == ["/usr/local/bin/dtmd"] and not bad,
          "systemd: ExecStart runs dtmd with real flags (%s)" % " ".join(exec_start))
    env_file = os.path.join(DEPLOY, "systemd", "dtmd.env.example")
    env_vars = {}
    with open(env_file) as f:
        for line in f:
            m = re.match(r"^#?(DTM_\w+)=(.*)$", line.strip())
            if m:
                env_vars.setdefault(m.group(1), m.group(2))
    known_env = {f["env"] for f in flags.values() if f["env"]}
    unknown = sorted(set(env_vars) - known_env)
    check(env_vars and not unknown, "systemd: dtmd.env.example's variables are dtmd's (%d)%s" % (
        len(env_vars), " unknown: %s" % unknown if unknown else ""))
    grace = parse_duration(effective("shutdown_grace", flags, argv, {}))
    stop = parse_duration(get("TimeoutStopSec") or "") or float(get("TimeoutStopSec") or 0)
    check(grace is not None and stop > grace,
          "systemd: TimeoutStopSec %s > --shutdown_grace %s" % (stop, grace))
    expect = {"Type": "simple", "KillSignal": "SIGTERM", "Restart": "on-failure",
              "NoNewPrivileges": "yes", "ProtectSystem": "strict", "StateDirectory": "dtm",
              "EnvironmentFile": "/etc/dtm/dtmd.env"}
    wrong = {k: get(k) for k, v in expect.items() if get(k) != v}
    check(not wrong, "systemd: %s%s" % (", ".join("%s=%s" % kv for kv in expect.items()),
                                        " (differ: %s)" % wrong if wrong else ""))
    check(get("User") not in (None, "root", "0") and get("LimitNOFILE") and
          get("ReadWritePaths"), "systemd: User=%s, LimitNOFILE=%s, ReadWritePaths=%s" % (
              get("User"), get("LimitNOFILE"), get("ReadWritePaths")))

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("note: no systemd-analyze here; the unit was checked by parsing only", flush=True)
        return
    # verify wants ExecStart's program to exist: a copy of the unit runs the dtmd just built.
    tmp = tempfile.mkdtemp(prefix="dtm-deploy-unit-")
    copy = os.path.join(tmp, "dtmd.service")
    with open(unit_path) as f:
        text = f.read()
    with open(copy, "w") as f:
        f.write(text.replace("ExecStart=/usr/local/bin/dtmd", "ExecStart=" + args.dtmd))
    r = subprocess.run([analyze, "verify", copy], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    complaints = [line for line in r.stdout.split("\n") if "dtmd.service" in line]
    check(r.returncode == 0 and not complaints,
          "systemd-analyze verify dtmd.service%s" % (": " + r.stdout.strip() if
                                                     r.returncode or complaints else ""))
    shutil.rmtree(tmp, ignore_errors=True)


# --- Grafana ------------------------------------------------------------------------------

def dashboard_metrics():
    path = os.path.join(DEPLOY, "grafana", "dtmd-dashboard.json")
    try:
        with open(path) as f:
            dash = json.load(f)
    except ValueError as e:
        check(False, "grafana: dtmd-dashboard.json is JSON (%s)" % e)
        return set()
    check(True, "grafana: dtmd-dashboard.json is JSON")
    check(any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
              for i in dash.get("__inputs", [])), "grafana: a DS_PROMETHEUS datasource input")
    panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
    exprs, sources = [], []
    for p in panels:
        sources.append(p.get("datasource", {}).get("uid"))
        for t in p.get("targets", []):
            exprs.append(t.get("expr", ""))
            sources.append(t.get("datasource", {}).get("uid"))
    check(panels and all(s == "${DS_PROMETHEUS}" for s in sources),
          "grafana: %d panels, all on ${DS_PROMETHEUS}" % len(panels))
    used = set()
    for e in exprs:
        for name in re.findall(r"\b((?:dtm|process)_[a-z0-9_]+)", e):
            used.add(re.sub(r"_(bucket|sum|count)$", "", name) if
                     re.sub(r"_(bucket|sum|count)$", "", name) in METRICS else name)
    check(used == METRICS, "grafana: the panels use exactly dtmd's metric names%s" % (
        "" if used == METRICS else " (unknown: %s, unused: %s)" % (
            sorted(used - METRICS), sorted(METRICS - used))))
    titles = " ".join(p.get("title", "") for p in panels).lower()
    check(all(w in titles for w in ("started", "finished", "branch", "latency", "commit",
                                    "store", "recovery", "lease", "api", "cpu", "memory")),
          "grafana: panels for throughput, outcomes, latencies, store, recovery, leases, API, "
          "CPU and memory")
    check("histogram_quantile(0.99" in " ".join(exprs) and "histogram_quantile(0.5" in
          " ".join(exprs), "grafana: p50 and p99 from the histograms")
    return used


# --- Running the Deployment ---------------------------------------------------------------

def health_stubs(tmp):
    """grpc.health.v1 stubs generated from grpc-proto's health.proto. The copy is compiled as
    health.proto, so that its Python module is not grpc.health.v1 (grpcio owns `grpc`); the
    service keeps its name, grpc.health.v1.Health."""
    src = os.path.join(tmp, "proto")
    out = os.path.join(tmp, "py")
    os.makedirs(src)
    os.makedirs(out)
    shutil.copy(args.health_proto, os.path.join(src, "health.proto"))
    r = subprocess.run([args.protoc, "-I", src, "--python_out", out, "--grpc_out", out,
                        "--plugin=protoc-gen-grpc=" + args.grpc_python_plugin, "health.proto"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(r.returncode == 0, "health stubs generated from %s %s" % (args.health_proto, r.stdout))
    sys.path.insert(0, out)
    spec = importlib.util.spec_from_file_location("health_pb2", os.path.join(out, "health_pb2.py"))
    health_pb2 = importlib.util.module_from_spec(spec)
    sys.modules["health_pb2"] = health_pb2
    spec.loader.exec_module(health_pb2)
    import health_pb2_grpc
    return health_pb2, health_pb2_grpc


def pid_namespace_works():
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Replica:
    """One dtmd started as the container would be: `argv` and `env` only (no environment of the
    test leaks in), optionally as PID 1 of a PID namespace; its log in tmp/<name>.log."""

    def __init__(self, name, argv, env, tmp, pid1):
        self.name = name
        self.log_path = os.path.join(tmp, name + ".log")
        log = open(self.log_path, "a+")
        self.pid1 = pid1
        if pid1:
            argv = ["unshare", "--pid", "--fork", "--kill-child", "--"] + argv
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        procs.append(self.proc)
        self.grpc_port = self.http_port = None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_started(self):
        def started():
            text = self.log()
            g = re.search(r"on port (\d+)", text)
            h = re.search(r"on HTTP port (\d+)", text)
            if g and h:
                self.grpc_port, self.http_port = int(g.group(1)), int(h.group(1))
                return True
            return self.proc.poll() is not None
        wait_until(started)
        return self.grpc_port is not None

    def dtmd_pid(self):
        """dtmd's own pid: the child unshare forked, as the runtime signals a container's PID 1."""
        if not self.pid1:
            return self.proc.pid
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None


def check_live(flags, live, health_pb2, health_pb2_grpc, dashboard_used):
    conninfo = os.environ.get("DTM_TEST_PG")
    check(bool(conninfo), "DTM_TEST_PG names the test run's PostgreSQL (ctest's pg fixture)")
    if not conninfo or live is None:
        return
    c, pod = live["container"], live["pod"]
    spec = pod["spec"]
    secret = live["secret"]
    check("schema" in flags and flags["schema"]["env"] == "DTM_SCHEMA",
          "dtmd has --schema (DTM_SCHEMA): this test's tables stay apart from other tests'")
    schema = "deploy_test_%d" % os.getpid()
    tmp = tempfile.mkdtemp(prefix="dtm-deploy-")
    pid1 = pid_namespace_works()
    print("note: replicas run %s" % ("as PID 1 of their own PID namespace, as in a container"
                                     if pid1 else "as ordinary processes (unshare --pid is not "
                                     "allowed here)"), flush=True)
    branches, branch_server, branch_port = serve_branches(lambda m, md, body: None)

    replicas, advertised = [], None
    for i in range(3):
        pod_name = "dtmd-%d" % i
        fields = {"status.podIP": "127.0.0.1", "metadata.namespace": "dtm-dev",
                  "metadata.name": pod_name, "spec.nodeName": "node-%d" % i,
                  "status.hostIP": "127.0.0.1"}

        def secret_value(name, key):
            # The Secret's connection string points at the dev overlay's PostgreSQL Service;
            # here it is the test run's PostgreSQL.
            assert (name, key) == (secret["name"], secret["key"]), (name, key)
            return conninfo
        env, _ = container_env(c, live["docs"], secret_value, fields.__getitem__)
        argv = [args.dtmd] + list(c.get("args", []))
        # The three replicas share this machine, not three pods: each listens on loopback and
        # on a port of its own (port 0: the kernel picks a free one; dtmd logs which), where
        # each pod would listen on the manifest's ports on its own IP. The probes' ports are
        # mapped to these below.
        for flag in ("listen", "http_listen"):
            flag_args = [idx for n, _, idx in parse_args_flags(argv[1:], flags) if n == flag]
            if flag_args:
                argv[flag_args[0] + 1] = "--%s=127.0.0.1:0" % flag
            else:
                env[flags[flag]["env"]] = "127.0.0.1:0"
        env["DTM_SCHEMA"] = schema
        advertised = env.get("DTM_ADVERTISE")
        # A container's environment: the image's PATH, the pod's HOSTNAME, the manifest's.
        env.update({"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOSTNAME": pod_name})
        # And a sanitizer build's settings (scripts/test.sh): the test's, not the container's.
        env.update({k: v for k, v in os.environ.items()
                    if k.endswith("SAN_OPTIONS") or k == "LLVM_SYMBOLIZER_PATH"})
        replicas.append(Replica(pod_name, argv, env, tmp, pid1))

    started = [r.wait_started() for r in replicas]
    for r, ok in zip(replicas, started):
        check(ok, "%s starts on PostgreSQL with the manifest's args and env%s" % (
            r.name, "" if ok else ":\n" + r.log()))
    if not all(started):
        return

    manifest_env = container_env(c, live["docs"], lambda n, k: "", lambda p: "")[0]
    manifest_grpc = port_of(effective("listen", flags, c.get("args", []), manifest_env))
    manifest_http = port_of(effective("http_listen", flags, c.get("args", []), manifest_env))

    def probe(r, p, channel=None):
        """Runs probe `p` (a gRPC probe of the manifest) against replica r: the health status
        name, or the gRPC code of the failure."""
        port = {manifest_grpc: r.grpc_port, manifest_http: r.http_port}[p["grpc"]["port"]]
        ch = channel or grpc.insecure_channel("127.0.0.1:%d" % port)
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=p["grpc"].get("service", "")),
                timeout=p.get("timeoutSeconds", 1))
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as e:
            return e.code().name
        finally:
            if channel is None:
                ch.close()

    for r in replicas:
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c[name]
            status = probe(r, p)
            check(status == "SERVING", "%s: %s (grpc port %s -> %s, service %r) answers %s" % (
                r.name, name, p["grpc"]["port"], r.grpc_port, p["grpc"].get("service", ""),
                status))

    # A saga through the first replica, calling a branch service; the others see it in the
    # store they share.
    channels = [grpc.insecure_channel("127.0.0.1:%d" % r.grpc_port) for r in replicas]
    stubs = [pb_grpc.CoordinatorStub(ch) for ch in channels]
    try:
        gid = stubs[0].NewGid(pb.NewGidRequest(), timeout=TIMEOUT).gid
        req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
        target = "127.0.0.1:%d/deploy.Orders/" % branch_port
        req.steps.add(action=target + "Create", compensate=target + "Cancel", payload=b"order")
        req.steps.add(action="")  # an empty target: a step with nothing to call
        req.options.wait_result = True
        reply = stubs[0].Submit(req, timeout=TIMEOUT)
        check(reply.status == pb.SUCCEEDED, "a saga submitted to %s succeeds" % replicas[0].name)
        calls = branches.of(gid)
        check([x["method"] for x in calls] == ["Create"], "its branch was called once")
        check(calls and calls[0].get("dtm-dtm") == advertised,
              "the branch is told to call back %s (DTM_ADVERTISE, from the downward API)" %
              advertised)
        for r, stub in zip(replicas[1:], stubs[1:]):
            t = stub.Query(pb.QueryRequest(gid=gid), timeout=TIMEOUT).transaction
            check(t.status == pb.SUCCEEDED, "%s reads it from the shared PostgreSQL: %s" % (
                r.name, pb.Status.Name(t.status)))
        # A two-phase message whose client goes silent after Prepare (sent to the second
        # replica): once its timeout_to_fail passed, a replica asks the branch service's
        # QueryPrepared and, told the message committed, delivers it.
        msg = gid + "-msg"
        prepare = pb.PrepareRequest(gid=msg, trans_type=pb.MSG,
                                    query_prepared=target + "QueryPrepared")
        prepare.steps.add(action=target + "Ship", payload=b"event")
        prepare.options.timeout_to_fail.FromMilliseconds(200)
        stubs[1].Prepare(prepare, timeout=TIMEOUT)
        delivered = wait_until(lambda: stubs[2].Query(
            pb.QueryRequest(gid=msg), timeout=TIMEOUT).transaction.status == pb.SUCCEEDED)
        check(delivered and [x["method"] for x in branches.of(msg)] == ["QueryPrepared", "Ship"],
              "a prepared msg its client left is back-checked and delivered")
    except grpc.RpcError as e:
        check(False, "transactions through the replicas: %s %s" % (e.code(), e.details()))
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/api/dtmsvr/newGid" %
                                    replicas[2].http_port, timeout=TIMEOUT) as resp:
            answer = json.loads(resp.read())
        check(answer.get("dtm_result") == "SUCCESS", "%s answers DTM's HTTP API" %
              replicas[2].name)
    except (OSError, ValueError) as e:
        check(False, "%s answers DTM's HTTP API: %s" % (replicas[2].name, e))

    # The dashboard's metric names against what the replicas serve (a labelled family shows
    # once it has a series: the transactions above gave every one of them some).
    served = set()
    for r in replicas:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % r.http_port,
                                        timeout=TIMEOUT) as resp:
                served |= set(re.findall(r"^# TYPE (\S+) ", resp.read().decode(), re.M))
        except OSError as e:
            check(False, "GET /metrics of %s: %s" % (r.name, e))
    missing = sorted(m for m in dashboard_used if m not in served)
    check(served and not missing, "the replicas' /metrics have every metric the dashboard "
          "uses%s" % (": missing %s" % missing if missing else ""))

    # SIGTERM, one replica after the other as a rolling update does.
    period = spec.get("terminationGracePeriodSeconds", 30)
    ready = c["readinessProbe"]
    for i, r in enumerate(replicas):
        pid = r.dtmd_pid()
        check(pid is not None, "%s: dtmd's pid found" % r.name)
        if pid is None:
            continue
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        not_ready_at, status = None, None
        while time.monotonic() - t0 < period:
            status = probe(r, ready, channels[i])
            if status != "SERVING":
                not_ready_at = time.monotonic() - t0
                break
            time.sleep(0.005)
        try:
            code = r.proc.wait(timeout=max(0.1, period - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            code = None
        exited_at = time.monotonic() - t0
        print("%s: SIGTERM -> readiness %s after %s s, exit %s after %.3f s "
              "(terminationGracePeriodSeconds %s)" % (
                  r.name, status, "%.3f" % not_ready_at if not_ready_at is not None else "-",
                  code, exited_at, period), flush=True)
        # NOT_SERVING from the health service, or the connection refused (UNAVAILABLE), or the
        # check cut off by the server's shutdown (CANCELLED): each fails a kubelet's probe.
        # A check left unanswered (DEADLINE_EXCEEDED) would fail it too, but would mean a hang.
        check(status in ("NOT_SERVING", "UNAVAILABLE", "CANCELLED") and not_ready_at is not None,
              "%s: readiness turns %s on SIGTERM" % (r.name, status))
        check(code == 0 and exited_at < period,
              "%s exits 0 within terminationGracePeriodSeconds (%s, %.2f s)" % (
                  r.name, code, exited_at))
        check("dtmd: stopped" in r.log(), "%s logs its stop" % r.name)
        for other in replicas[i + 1:]:
            check(probe(other, ready) == "SERVING",
                  "%s stays ready while %s stops" % (other.name, r.name))
    for ch in channels:
        ch.close()
    branch_server.stop(0)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    started = time.monotonic()
    flags = dtmd_flags(args.dtmd)
    check(len(flags) > 20 and flags.get("listen", {}).get("env") == "DTM_LISTEN" and
          flags.get("store", {}).get("env") == "DTM_STORE",
          "dtmd --helpfull lists %d flags with their DTM_* variables" % len(flags))
    rendered = {}
    for path in ("deploy/k8s", "deploy/k8s/dev"):
        rc, err, docs = render(os.path.join(SRC, path))
        kinds = sorted("%s/%s" % (d.get("kind"), d.get("metadata", {}).get("name")) for d in docs)
        check(rc == 0 and docs and all(d.get("apiVersion") and d.get("kind") and
                                       d.get("metadata", {}).get("name") for d in docs),
              "kubectl kustomize %s: %s%s" % (path, " ".join(kinds),
                                              "" if rc == 0 else " (%s)" % err))
        rendered[path] = docs
    docker = check_dockerfile()
    live = check_manifests(flags, rendered["deploy/k8s"], rendered["deploy/k8s/dev"], docker)
    check_examples()
    check_systemd(flags)
    used = dashboard_metrics()
    tmp = tempfile.mkdtemp(prefix="dtm-deploy-health-")
    health_pb2, health_pb2_grpc = health_stubs(tmp)
    check_live(flags, live, health_pb2, health_pb2_grpc, used)
    shutil.rmtree(tmp, ignore_errors=True)
    print("deploy_test: %.1f s" % (time.monotonic() - started), flush=True)


if __name__ == "__main__":
    run(main)
