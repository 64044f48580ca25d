"""What the Python end-to-end tests share: their command line, the pass/fail tally and its
summary, child servers (dtmd among them) started on free ports and stopped, a recording gRPC
branch service, and waiting on a condition with a deadline.

A test imports it by name: Python puts the directory of the script it runs first on sys.path,
and ctest runs each test as `/usr/bin/python3 tests/e2e/<test>.py ...`.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc

TIMEOUT = 30  # seconds: the default for any wait on a server
LOOPBACK = "127.0.0.1:"

results = {"passed": 0, "failed": 0}
procs = []  # every child process start() started, so that none outlives the test


def parse_args(*flags):
    """Parses the test's command line, where each of `flags` is a required --flag VALUE (ctest
    passes them; see CMakeLists.txt). A --gen directory holds generated stubs: it goes first on
    sys.path, so the test can import them right after."""
    parser = argparse.ArgumentParser()
    for flag in flags:
        parser.add_argument("--" + flag, required=True)
    args = parser.parse_args()
    if "gen" in flags:
        sys.path.insert(0, args.gen)
    return args


def check(cond, what):
    """Counts one check and prints it as "ok   <what>" or "FAIL <what>"; a failed check does
    not stop the test, so one run shows every failure."""
    results["passed" if cond else "failed"] += 1
    print("ok  " if cond else "FAIL", what, flush=True)


def run(main):
    """Runs a test's main(), kills whatever servers it left running even when it raises, prints
    "N passed, M failed" and exits 1 if main returned non-zero or any check failed, else 0."""
    try:
        code = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print("%d passed, %d failed" % (results["passed"], results["failed"]), flush=True)
    sys.exit(1 if code or results["failed"] else 0)


def start(argv, name, tmp, pattern=r"on port (\d+)"):
    """Starts a server that picks a free port itself and says which once it listens; its stdout
    and stderr go to <tmp>/<name>.log. Returns (process, the first group of `pattern` in that
    log: the port). Raises RuntimeError with the log if the server exits or TIMEOUT passes
    first. The log is opened for appending: the child's writes then always land at its end,
    whatever offset the polling reads here leave in the file description the two share."""
    log = open(os.path.join(tmp, name + ".log"), "a+")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    procs.append(proc)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        log.seek(0)
        m = re.search(pattern, log.read())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    raise RuntimeError("%s did not start:\n%s" % (name, log.read()))


def dtmd_argv(dtmd, tmp, *flags, http_listen=LOOPBACK + "0"):
    """dtmd's command line for a test: gRPC on a free loopback port, HTTP on `http_listen`
    ("" turns it off), a SQLite store in `tmp`, then `flags`."""
    return [dtmd, "--listen=127.0.0.1:0", "--http_listen=" + http_listen,
            "--store=sqlite://%s/dtm.db" % tmp] + list(flags)


def start_dtmd(dtmd, tmp, *flags, **kwargs):
    """Starts dtmd as dtmd_argv() says, logging to <tmp>/dtmd.log; returns (process, the
    host:port of its gRPC services)."""
    proc, port = start(dtmd_argv(dtmd, tmp, *flags, **kwargs), "dtmd", tmp)
    return proc, LOOPBACK + port


def stop(proc):
    """Asks a server to shut down (SIGTERM) and returns its exit code: 0 for a clean stop."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=TIMEOUT)


def wait_until(cond, seconds=TIMEOUT):
    """Polls cond() until it is true or `seconds` pass; returns its last answer."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def post_json(url, body, timeout=60):
    """POSTs `body` as JSON to `url`; returns (HTTP status, the parsed JSON answer), for 4xx
    and 5xx answers too."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def identity(b):
    """A gRPC (de)serializer that passes bytes through: for calls without generated stubs."""
    return b


def raw_unary(channel, method):
    """A unary call of `method` ("/package.Service/Method") on `channel` that sends and returns
    raw bytes: how a test calls a branch itself, or a service it has no stubs for."""
    return channel.unary_unary(method, request_serializer=identity,
                               response_deserializer=identity)


class RecordingBranches(grpc.GenericRpcHandler):
    """A gRPC branch service on every /Service/Method that records each call as a dict: its
    "method" name, its "body" (raw bytes), its dtm-* metadata (dtm-gid, dtm-op, ...) and its
    W3C trace context (traceparent, tracestate). refuse(method, metadata, body) returns a
    reason to refuse the call with ABORTED (DTM's FAILURE), a (grpc.StatusCode, reason) pair to
    refuse it with that code, or None to answer it with an empty message."""

    def __init__(self, refuse):
        self.refuse = refuse
        self.calls = []
        self.lock = threading.Lock()

    def service(self, details):
        name = details.method.rsplit("/", 1)[-1]

        def handle(request, context):
            md = dict(context.invocation_metadata())
            call = {"method": name, "body": request}
            call.update({k: v for k, v in md.items()
                         if k.startswith("dtm-") or k in ("traceparent", "tracestate")})
            with self.lock:
                self.calls.append(call)
            reason = self.refuse(name, md, request)
            if isinstance(reason, tuple):
                context.abort(*reason)
            if reason:
                context.abort(grpc.StatusCode.ABORTED, reason)
            return b""

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=identity, response_serializer=identity)

    def of(self, gid):
        """The calls of transaction `gid`, in the order they came."""
        with self.lock:
            return [c for c in self.calls if c.get("dtm-gid") == gid]

    def methods(self, gid):
        """The method names of the calls of transaction `gid`, in the order they came."""
        return [c["method"] for c in self.of(gid)]


def serve_branches(refuse):
    """Serves a RecordingBranches(refuse) on a free loopback port; returns (the service, its
    grpc.Server, the port)."""
    branches = RecordingBranches(refuse)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((branches,))
    port = server.add_insecure_port(LOOPBACK + "0")
    server.start()
    return branches, server, port
