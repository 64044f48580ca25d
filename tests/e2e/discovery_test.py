#!/usr/bin/python3
"""Service discovery end to end: branch targets whose name has several addresses, as a
Kubernetes headless Service's name has one per pod. A real dtmd calls a dns:/// gRPC target and
an http:// target, each a name with two loopback addresses (127.0.0.1 and 127.0.0.2) where two
branch servers listen on the same port, for sagas submitted to its HTTP API:

- every server behind a name gets calls, and every saga succeeds;
- an address the HTTP name gains (a pod came) gets calls once dtmd resolves the name again;
- a server that stops while the name still lists it (a pod went, DNS not updated yet) costs no
  saga: the others take the calls; started again, it gets calls again.

The names exist only for dtmd: it runs in a private mount namespace where a hosts file of the
test's own is bind-mounted over /etc/hosts (unshare and mount, util-linux), which gRPC's resolver
(c-ares) and getaddrinfo (HTTP branches) both read. That takes root, as CI runs; without it the
test fails and says so. The machine's /etc/hosts is not touched.

Usage: discovery_test.py --dtmd PATH
"""
import json
import os
import socket
import tempfile
import threading
import time
import urllib.request
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from e2e_support import (TIMEOUT, RecordingBranches, check, dtmd_argv, parse_args, post_json,
                         run, start, stop, wait_until)

args = parse_args("dtmd")
GRPC_NAME = "grpc.discovery.test"
HTTP_NAME = "http.discovery.test"
ADDRESSES = ("127.0.0.1", "127.0.0.2")
SAGAS = 20  # per round


class HttpBranch:
    """An HTTP branch server in DTM's protocol on host:port that counts the calls it answers
    (every one with SUCCESS). stop() closes its listener and its open connections too, as a
    pod that goes away does."""

    def __init__(self, host, port):
        self.calls = 0
        self.lock = threading.Lock()
        self.connections = set()
        branch = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as dtmd's libcurl uses it

            def setup(self):
                super().setup()
                with branch.lock:
                    branch.connections.add(self.connection)

            def finish(self):
                with branch.lock:
                    branch.connections.discard(self.connection)
                super().finish()

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with branch.lock:
                    branch.calls += 1
                body = b'{"dtm_result":"SUCCESS"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = answer
            do_GET = answer

            def log_message(self, *unused):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return self.calls

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for c in list(self.connections):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class GrpcBranch:
    """A recording gRPC branch server on host:port (e2e_support's RecordingBranches)."""

    def __init__(self, host, port):
        self.branches = RecordingBranches(lambda *unused: None)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((self.branches,))
        self.port = self.server.add_insecure_port("%s:%d" % (host, port))
        if self.port == 0 or (port and self.port != port):
            raise RuntimeError("cannot listen on %s:%d" % (host, port))
        self.server.start()

    def count(self):
        with self.branches.lock:
            return len(self.branches.calls)

    def stop(self):
        self.server.stop(0).wait()


def write_hosts(path, names):
    """Writes the test's hosts file in place (the bind mount shows this very file: a new file
    renamed over it would not be seen): `names` maps a name to its addresses."""
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n")
        for name, addresses in names.items():
            for a in addresses:
                f.write("%s %s\n" % (a, name))


def main():
    if os.geteuid() != 0:
        check(False, "discovery_test needs root: it runs dtmd in a private mount namespace "
                     "with its own /etc/hosts (unshare --mount, mount --bind); CI runs as root")
        return 1
    began = time.time()
    tmp = tempfile.mkdtemp(prefix="dtm-discovery-")
    hosts = os.path.join(tmp, "hosts")

    grpc_servers = [GrpcBranch(ADDRESSES[0], 0)]
    grpc_servers.append(GrpcBranch(ADDRESSES[1], grpc_servers[0].port))
    http_servers = [HttpBranch(ADDRESSES[0], 0)]
    http_servers.append(HttpBranch(ADDRESSES[1], http_servers[0].port))
    grpc_port, http_port = grpc_servers[0].port, http_servers[0].port

    # The HTTP name starts with one address: the second comes later.
    write_hosts(hosts, {GRPC_NAME: ADDRESSES, HTTP_NAME: ADDRESSES[:1]})
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    dtmd, api_port = start(
        wrapper + dtmd_argv(args.dtmd, tmp, "--min_retry_interval=1ms", "--verbose_errors"),
        "dtmd", tmp, r"on HTTP port (\d+)")
    api = "http://127.0.0.1:%s/api/dtmsvr/" % api_port
    with open("/etc/hosts") as f:
        check("discovery.test" not in f.read(), "the machine's /etc/hosts is untouched")

    def post(path, body):
        return post_json(api + path, body)

    def status_of(gid):
        with urllib.request.urlopen(api + "query?gid=" + gid, timeout=TIMEOUT) as r:
            return json.loads(r.read())["transaction"]["status"]

    counter = [0]

    def saga():
        """Submits one saga (a gRPC step, then an HTTP step, both by name) and waits for it;
        True once it succeeded."""
        counter[0] += 1
        gid = "disc-%d" % counter[0]
        grpc_target = "dns:///%s:%d/busi.Busi/" % (GRPC_NAME, grpc_port)
        http_target = "http://%s:%d/busi/" % (HTTP_NAME, http_port)
        body = {"gid": gid, "trans_type": "saga", "wait_result": True, "retry_interval": 1,
                "steps": [{"action": grpc_target + "Action",
                           "compensate": grpc_target + "Compensate"},
                          {"action": http_target + "Action",
                           "compensate": http_target + "Compensate"}],
                "payloads": ["{}", "{}"]}
        code, answer = post("submit", body)
        if code == 200 and answer.get("dtm_result") == "SUCCESS":
            return True
        # A call that failed on the way (a server that just went) is retried: wait for it.
        return wait_until(lambda: status_of(gid) == "succeed")

    def counts(servers):
        return [s.count() for s in servers]

    def sagas(n):
        return sum(saga() for _ in range(n))

    def sagas_until(cond):
        """Submits sagas until cond() holds (or TIMEOUT passes): (whether it held, whether
        every saga succeeded)."""
        ok = True
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and not cond():
            ok = saga() and ok
        return cond(), ok

    # Every address of each name gets calls.
    check(sagas(SAGAS) == SAGAS, "%d sagas over both names succeed" % SAGAS)
    g, h = counts(grpc_servers), counts(http_servers)
    check(g[0] > 0 and g[1] > 0 and sum(g) == SAGAS,
          "gRPC: both servers behind %s got calls: %s" % (GRPC_NAME, g))
    check(h == [SAGAS, 0], "HTTP: the one address of %s got every call: %s" % (HTTP_NAME, h))

    # A pod comes: the HTTP name gains an address, called once dtmd resolves it again.
    write_hosts(hosts, {GRPC_NAME: ADDRESSES, HTTP_NAME: ADDRESSES})
    t = time.time()
    came, ok = sagas_until(lambda: http_servers[1].count() > 0)
    check(came and ok, "HTTP: the address %s gained is called after %.1f s (re-resolved every "
          "5 s), every saga succeeding" % (HTTP_NAME, time.time() - t))
    h = counts(http_servers)
    check(sagas(SAGAS) == SAGAS, "%d more sagas succeed" % SAGAS)
    h2 = counts(http_servers)
    check(h2[0] > h[0] and h2[1] > h[1], "HTTP: both servers got calls: %s" % h2)

    # A pod goes while DNS still lists it: the other server takes every call.
    grpc_servers[1].stop()
    http_servers[1].stop()
    g, h = counts(grpc_servers), counts(http_servers)
    check(sagas(SAGAS) == SAGAS, "with one server of each name stopped, %d sagas succeed" % SAGAS)
    g2, h2 = counts(grpc_servers), counts(http_servers)
    check(g2[0] - g[0] >= SAGAS and g2[1] == g[1],
          "gRPC: the server left got every call: %s -> %s" % (g, g2))
    check(h2[0] - h[0] == SAGAS and h2[1] == h[1],
          "HTTP: the server left got every call, none failed: %s -> %s" % (h, h2))

    # It comes back on the same address: it gets calls again.
    grpc_servers[1] = GrpcBranch(ADDRESSES[1], grpc_port)
    http_servers[1] = HttpBranch(ADDRESSES[1], http_port)
    back, ok = sagas_until(lambda: grpc_servers[1].count() > 0 and http_servers[1].count() > 0)
    check(back and ok, "both servers started again get calls again, every saga succeeding: "
          "gRPC %s, HTTP %s" % (counts(grpc_servers), counts(http_servers)))

    check(stop(dtmd) == 0, "dtmd stops cleanly")
    for s in grpc_servers + http_servers:
        s.stop()
    print("%d sagas in %.1f s" % (counter[0], time.time() - began), flush=True)
    return 0


if __name__ == "__main__":
    run(main)
