#!/usr/bin/python3
"""The bank invariant under real network faults: two dtmd replicas, PostgreSQL (dtmd's store,
over TCP) and the branch services each in a network namespace of their own, joined by a bridge
(netns.py), with packets lost, delayed, reordered, duplicated and cut off by nftables rules and
netdelay (netdelay.c) while dtm-faultload runs its random transfers through both replicas.

Phases, each with the invariant audited at its end (dtm-faultload exits 0):
- loss:      a share of every packet between any two nodes is dropped (--loss, 5-30 %).
- delay:     every packet is held --delay_ms +- --jitter_ms (uniform) by its sender (by default
             50 to 500 ms); the jitter also reorders packets.
- partition: dtmd replicas and the branch services (and the clients, which live with them) cut
             off from each other for --partition_seconds, longer than request_timeout, then
             healed: calls time out and are retried, then the work finishes.
- duplicate: --dup % of every node's packets sent twice, with a 5 +- 5 ms hold whose jitter
             exceeds the gap between packets, so that packets also arrive out of order.
- lease:     one replica (d1) cut off from the database while the other (d2) still reaches it,
             for longer than --lease, while sagas submitted through d1 are being retried (their
             first action answers UNAVAILABLE until d1's lease is long over). The branch service
             records each call's peer address and arrival time: no call may come from d1 later
             than the cut + the lease (+ TOLERANCE, below), nor, by dtmd's own rule (ADR 7),
             later than min(request_timeout, lease/2) before that; d1 must have gone on calling
             after the cut (else those checks prove nothing), and d2 must finish every saga.
             The cut starts with half a second in which only the database's answers to d1 are
             lost, so that a batch d1 writes then is left begun and uncommitted on the server,
             as whenever a cut falls inside a batch. That session, idle in its transaction,
             keeps the locks of the rows it wrote until the server learns the connection is
             dead, which without settings for it is long after the partition ends (TCP
             keepalive, hours, or the client's retransmissions once healed); meanwhile d2
             cannot claim those sagas (recovery claims with SKIP LOCKED). dtmd does not end
             such sessions itself; --store_options "-c idle_in_transaction_session_timeout=2s"
             (a session setting in dtmd's --store) makes the server end them, and the ctest
             entry that runs this phase sets it (see network.cmake).

What each fault did is printed: packets the rules dropped, duplicated or delayed (their
counters; reordering as counted by netdelay), branch calls by outcome and lease figures from
each replica's /metrics (read from inside the replica's namespace, where no fault reaches), and
dtm-faultload's RESULT line (duplicates the barrier absorbed, calls clients saw UNAVAILABLE,
throughput); at the end one SUMMARY line of JSON per phase.

The test process itself moves into the branch services' namespace right after making the
topology (netns.Topology.enter), so dtm-faultload, the recording branch service and the test's
own gRPC client run there; dtmd, PostgreSQL and netdelay are started in theirs with ip netns
exec. The banks' ledgers are on the same PostgreSQL through its unix socket, which no network
fault touches (they are not under test). It needs root (namespaces, nftables); without root it
fails and says so, as CI runs as root. Everything it creates is removed at the end, also when
it fails (--keep keeps the logs).

Usage: network_faults_test.py --dtmd PATH --faultload PATH --netdelay PATH --gen DIR
       [--phases loss,delay,partition,duplicate,lease] [--seconds S] [--loss PCT] ...
The default is the reduced form CI runs (about 100 s); --seconds, or DTM_NETFAULT_SECONDS, sets
how long each workload phase's fault lasts, for a longer run.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)

import grpc  # noqa: E402

import netns  # noqa: E402
from e2e_support import (RecordingBranches, check, identity, results, run,  # noqa: E402
                         wait_until)

GRPC_PORT = 36790
HTTP_PORT = 36789
REPLICAS = ("d1", "d2")
# A call from d1 counts as "after its lease" if it reached the branch service later than the
# partition's start + --lease + TOLERANCE. The start is taken once the nft command that cuts
# d1 off has returned, so d1's last renewal was before it and its lease (on the database's
# clock, which dtmd reads with an offset measured over a round trip on this same machine: off by
# well under a millisecond) ends at most --lease later. The tolerance is only for what lies
# between dtmd deciding to call and the branch service stamping the call: a few milliseconds on
# an unloaded path, up to a scheduling delay of a busy 2-core machine. dtmd's own rule stops
# calls min(request_timeout, lease/2) earlier still, which is printed and checked as well.
TOLERANCE = 0.25


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--dtmd", required=True)
    p.add_argument("--faultload", required=True)
    p.add_argument("--netdelay", required=True)
    p.add_argument("--gen", required=True, help="directory of the generated dtm/v1 stubs")
    p.add_argument("--phases", default="loss,delay,partition,duplicate,lease")
    p.add_argument("--seconds", type=float,
                   default=float(os.environ.get("DTM_NETFAULT_SECONDS", "12")),
                   help="how long each workload phase's fault lasts (and transfers are sent)")
    p.add_argument("--threads", type=int, default=6, help="dtm-faultload's client threads")
    p.add_argument("--modes", default="saga,tcc,msg,xa,http,msgcrash,xavanish",
                   help="dtm-faultload's transfer kinds")
    p.add_argument("--loss", type=int, default=15, help="percent of packets dropped")
    p.add_argument("--delay_ms", type=int, default=275)
    p.add_argument("--jitter_ms", type=int, default=225)
    p.add_argument("--delay_threads", type=int, default=24,
                   help="client threads in the delay phase, where each mostly waits")
    p.add_argument("--dup", type=int, default=15, help="percent of packets duplicated")
    p.add_argument("--partition_seconds", type=float, default=8.0)
    p.add_argument("--request_timeout", type=float, default=3.0,
                   help="request_timeout dtm-faultload sends (the partition must outlast it)")
    p.add_argument("--lease", type=float, default=4.0, help="dtmd's --lease, seconds")
    p.add_argument("--sagas", type=int, default=12, help="sagas through d1 in the lease phase")
    p.add_argument("--store_options", default="",
                   help="PostgreSQL settings dtmd's sessions start with (libpq options=, "
                        "e.g. '-c idle_in_transaction_session_timeout=2s')")
    p.add_argument("--seed", type=int, default=0, help="0: from the clock")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args()
    if a.seed == 0:
        a.seed = int(time.time()) % 1000000
    return a


args = parse()
sys.path.insert(0, args.gen)
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402


# --- metrics ------------------------------------------------------------------------------

def scrape(topo, node):
    """{series: value} of `node`'s dtmd /metrics, read from inside its namespace over
    loopback (faults act on eth0 only)."""
    text = topo.http_get(node, "http://127.0.0.1:%d/metrics" % HTTP_PORT)
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(dtm_\w+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def total(metrics, name, **labels):
    """The sum of the series of metric `name` whose labels include `labels`."""
    s = 0.0
    for series, v in metrics.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        if all('%s="%s"' % (k, val) in rest for k, val in labels.items()):
            s += v
    return s


def delta(before, after, name, **labels):
    return int(total(after, name, **labels) - total(before, name, **labels))


def describe_metrics(before, after):
    """One line per replica of what it did in a phase."""
    lines = []
    for node in REPLICAS:
        b, a = before[node], after[node]
        calls = {o: delta(b, a, "dtm_branch_calls_total", outcome=o)
                 for o in ("success", "failure", "ongoing", "transient")}
        lines.append("%s: branch calls %s; lease renewals %d, lease losses %d, recovery "
                     "claimed %d; transactions finished %d" % (
                         node, " ".join("%s=%d" % kv for kv in calls.items()),
                         delta(b, a, "dtm_lease_renewals_total"),
                         delta(b, a, "dtm_lease_losses_total"),
                         delta(b, a, "dtm_recovery_claimed_total"),
                         delta(b, a, "dtm_transactions_finished_total")))
    return lines


# --- the workload phases ------------------------------------------------------------------

class Faultload:
    """A dtm-faultload run in this process's namespace (the branch services'), logging to
    <tmp>/faultload-<phase>.log."""

    def __init__(self, topo, tmp, phase, pg_unix, seconds, seed, threads):
        self.log = os.path.join(tmp, "faultload-%s.log" % phase)
        argv = [args.faultload,
                "--coordinator=" + ",".join("%s:%d" % (topo.addr(n), GRPC_PORT)
                                            for n in REPLICAS),
                "--bank_pg=" + pg_unix, "--listen_host=" + topo.addr("bank"),
                "--seconds=%ds" % max(1, int(round(seconds))), "--transfers=1000000",
                "--threads=%d" % threads, "--seed=%d" % seed,
                "--request_timeout=%dms" % int(args.request_timeout * 1000),
                "--settle_seconds=150s", "--modes=" + args.modes]
        self.proc = subprocess.Popen(argv, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def progress(self):
        """The last progress line's figures, or {}."""
        lines = re.findall(r"faultload: progress (.*)", self.text())
        if not lines:
            return {}
        return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", lines[-1])}

    def result(self):
        m = re.search(r"faultload: RESULT (\{.*\})", self.text())
        return json.loads(m.group(1)) if m else None

    def wait(self, seconds):
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def hold_for(seconds, proc=None):
    """Lets a fault last `seconds` (the phase's design, not a wait for some condition); returns
    early if `proc` exits."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        time.sleep(0.1)


def workload_phase(topo, tmp, pg_unix, phase, description, apply_fault, fault_seconds,
                   submit_seconds, extra=None, threads=None):
    """Runs dtm-faultload for `submit_seconds`; once its first transfers succeeded,
    apply_fault() (which returns the fault's name) is in force for `fault_seconds`, then
    cleared. Checks the invariant and prints what the fault did."""
    print("--- phase %s: %s" % (phase, description), flush=True)
    before = {n: scrape(topo, n) for n in REPLICAS}
    began = time.time()
    load = Faultload(topo, tmp, phase, pg_unix, submit_seconds,
                     args.seed + sum(map(ord, phase)),
                     threads or args.threads)
    started = wait_until(lambda: load.progress().get("ok", 0) > 0 or load.proc.poll() is not None,
                         60)
    check(started and load.proc.poll() is None,
          "%s: dtm-faultload is running and its first transfers succeeded" % phase)
    names = apply_fault()
    names = [names] if isinstance(names, str) else names
    applied = time.time()
    at_apply = load.progress()
    hold_for(fault_seconds, load.proc)
    at_clear = load.progress()
    kinds = [topo.faults[n].kind for n in names]
    stats = [topo.clear(n) for n in names]
    cleared = time.time()
    for kind, st in zip(kinds, stats):
        print("%s: %s fault in force %.1f s: %d packets matched, %d %s%s" % (
            phase, kind, cleared - applied, st["seen"], st["acted"],
            {"loss": "dropped", "partition": "dropped", "duplicate": "duplicated",
             "delay": "delayed"}[kind],
            ", %d of them left out of order" % st["reordered"] if "reordered" in st else ""),
            flush=True)
    code = load.wait(submit_seconds + 240)
    ended = time.time()
    after = {n: scrape(topo, n) for n in REPLICAS}
    result = load.result()
    for line in describe_metrics(before, after):
        print("%s: %s" % (phase, line), flush=True)
    print("%s: during the fault: %s transfers submitted, %s ok, %s unavailable, %s other "
          "errors" % (phase, *(int(at_clear.get(k, 0) - at_apply.get(k, 0))
                               for k in ("submitted", "ok", "unavailable", "other"))),
          flush=True)
    print("%s: RESULT %s" % (phase, json.dumps(result)), flush=True)
    print("%s: phase took %.1f s (settling after the fault %.1f s)" % (
        phase, ended - began, ended - cleared), flush=True)
    check(code == 0, "%s: dtm-faultload exits 0: the bank invariant held (exit %s; log %s)" %
          (phase, code, load.log))
    if code != 0:
        for line in load.text().splitlines():
            if "VIOLATION" in line or "error" in line.lower():
                print("   ", line)
    # ("unknown" transfers never reached dtmd, which a fault between the clients and dtmd
    # may well cause: the audit checks they moved no money.)
    check(result is not None and result.get("violations") == 0 and
          result.get("not_terminal") == 0,
          "%s: no violation, no transaction left unfinished (%s never reached dtmd)" % (
              phase, result and result.get("unknown")))
    check(result is not None and result.get("succeeded", 0) > 0,
          "%s: transfers succeeded (%s)" % (phase, result and result.get("succeeded")))
    for kind, st in zip(kinds, stats):
        check(st["acted"] > 0, "%s: the %s fault acted on packets (%d)" % (phase, kind,
                                                                          st["acted"]))
        if "reordered" in st:
            check(st["reordered"] > 0, "%s: packets were reordered (%d)" % (phase,
                                                                        st["reordered"]))
    if extra:
        extra(before, after, result, at_apply, at_clear)
    r = result or {}
    SUMMARY.append({
        "phase": phase, "fault": description, "fault_seconds": round(cleared - applied, 1),
        "packets": {k: st["acted"] for k, st in zip(kinds, stats)},
        "reordered": sum(st.get("reordered", 0) for st in stats),
        "transfers": r.get("transfers"), "succeeded": r.get("succeeded"),
        "failed": r.get("failed"), "never_reached_dtmd": r.get("unknown"),
        "violations": r.get("violations"),
        "during_fault": {k: int(at_clear.get(k, 0) - at_apply.get(k, 0))
                         for k in ("submitted", "ok", "unavailable", "other")},
        "throughput": r.get("throughput"),
        "transient_calls": sum(delta(before[n], after[n], "dtm_branch_calls_total",
                                     outcome="transient") for n in REPLICAS),
        "lease_losses": sum(delta(before[n], after[n], "dtm_lease_losses_total")
                            for n in REPLICAS),
        "recovery_claimed": sum(delta(before[n], after[n], "dtm_recovery_claimed_total")
                                for n in REPLICAS),
        "duplicates_absorbed": r.get("duplicates_absorbed"),
        "client_unavailable": r.get("unavailable"),
        "settle_seconds": r.get("settle_seconds"), "seconds": round(ended - began, 1)})
    return result


# --- the lease phase ----------------------------------------------------------------------

class PeerRecorder(RecordingBranches):
    """RecordingBranches that also records, for each call, when it arrived and from which
    peer address (context.peer(): "ipv4:10.x.y.z:port")."""

    def __init__(self, refuse):
        super().__init__(refuse)
        self.arrivals = []  # (time, peer, gid, method)

    def service(self, details):
        inner = super().service(details).unary_unary
        name = details.method.rsplit("/", 1)[-1]

        def handle(request, context):
            now = time.time()
            gid = dict(context.invocation_metadata()).get("dtm-gid", "")
            with self.lock:
                self.arrivals.append((now, context.peer(), gid, name))
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=identity, response_serializer=identity)


def lease_phase(topo):
    """Sagas through d1, whose first action answers UNAVAILABLE until released, so that d1
    keeps calling it; then d1 is cut off from the database for well over a lease."""
    lease = args.lease
    print("--- phase lease: d1 cut off from the database for longer than --lease=%gs while "
          "it retries %d sagas; d2 still reaches it" % (lease, args.sagas), flush=True)
    released = threading.Event()

    def refuse(method, metadata, body):
        if method == "Action1" and not released.is_set():
            return (grpc.StatusCode.UNAVAILABLE, "not yet")
        return None

    branches = PeerRecorder(refuse)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((branches,))
    port = server.add_insecure_port("%s:0" % topo.addr("bank"))
    server.start()
    try:
        lease_phase_body(topo, branches, port, released, lease)
    finally:
        server.stop(0)


def lease_phase_body(topo, branches, port, released, lease):
    began = time.time()
    request_timeout = 1.0
    margin = min(request_timeout, lease / 2)  # ADR 7: calls stop this long before the lease ends

    def target(m):
        return "%s:%d/netfault.Bank/%s" % (topo.addr("bank"), port, m)

    stubs = {n: pb_grpc.CoordinatorStub(grpc.insecure_channel(
        "%s:%d" % (topo.addr(n), GRPC_PORT))) for n in REPLICAS}
    gids = ["lease-%d-%d" % (args.seed, i) for i in range(args.sagas)]
    for gid in gids:
        req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
        for i in (1, 2):
            req.steps.add(action=target("Action%d" % i), compensate=target("Compensate%d" % i),
                          payload=b"x")
        req.options.retry_interval.FromMilliseconds(200)
        req.options.max_retry_interval.FromMilliseconds(400)
        req.options.request_timeout.FromMilliseconds(int(request_timeout * 1000))
        stubs["d1"].Submit(req, timeout=30)

    def calls(node):
        """(arrival time, gid) of the calls of this phase's sagas that came from `node`."""
        with branches.lock:
            return [(t, g) for t, p, g, _ in branches.arrivals
                    if topo.node_of(p) == node and g in gids]

    check(wait_until(lambda: {g for _, g in calls("d1")} == set(gids), 30),
          "lease: d1 is calling every saga's first action")
    before = {n: scrape(topo, n) for n in REPLICAS}
    # First only the database's answers to d1 are lost, for half a second: d1's statements
    # still arrive, so the batch it writes then is begun on the server and never committed (d1
    # waits for answers that do not come), as happens whenever a cut falls inside a batch.
    # Then the cut is complete.
    topo.partition(["db"], ["d1"], name="lease_answers", oneway=True)
    hold_for(0.5)
    topo.partition(["d1"], ["db"], name="lease")
    cut = time.time()  # the partition is in force from here on
    bound = cut + lease + TOLERANCE
    # Refusals go on well past d1's lease, so that a d1 that ignored its lease would still
    # have calls to make; then d2, which claims the sagas once d1's leases ran out, gets them
    # done.
    hold_for(lease + 3)
    print("lease: d1's sessions on the database server %.1f s into the partition (pid, state, "
          "idle for, in transaction for, last statement; then their locks):\n%s" % (
              time.time() - cut, pg_sessions(topo.addr("d1"))), flush=True)
    released.set()

    def status(gid):
        try:
            return stubs["d2"].Query(pb.QueryRequest(gid=gid), timeout=5).transaction.status
        except grpc.RpcError:
            return None

    finished = wait_until(lambda: all(status(g) == pb.SUCCEEDED for g in gids), 30)
    done = time.time()
    if not finished:
        print("lease: not finished: %s" % ", ".join(
            "%s=%s" % (g, pb.Status.Name(status(g) or 0)) for g in gids
            if status(g) != pb.SUCCEEDED), flush=True)
    after_done = scrape(topo, "d2")
    d1_times = [t for t, _ in calls("d1")]
    late = [t for t in d1_times if t > bound]
    last = max(d1_times)
    d2_calls = calls("d2")
    first_d2 = min((t for t, _ in d2_calls), default=None)
    print("lease: %d calls from d1 after the cut, the last %.3f s after it (its lease ends by "
          "%.1f s; dtmd's own rule stops calls by %.1f s)" % (
              len([t for t in d1_times if t > cut]), last - cut, lease, lease - margin),
          flush=True)
    print("lease: d2's first call %.3f s after the cut; %s %.1f s after it" % (
        (first_d2 - cut) if first_d2 else float("nan"),
        "every saga done" if finished else "still not every saga done", done - cut), flush=True)
    check(not late, "lease: no call from d1 later than the cut + lease + %.2f s (%d late%s)" % (
        TOLERANCE, len(late), ", the latest %.3f s after the cut" % (max(late) - cut)
        if late else ""))
    check(last <= cut + lease - margin + TOLERANCE,
          "lease: nor later than the lease's end minus min(request_timeout, lease/2), dtmd's "
          "own rule")
    check(last > cut, "lease: d1 went on calling after the cut (the checks above can fail)")
    check(finished, "lease: every saga succeeded (queried through d2)")
    check({g for _, g in d2_calls} == set(gids),
          "lease: d2 called every saga's branches: it finished d1's work (%d of %d)" % (
              len({g for _, g in d2_calls}), len(gids)))
    claimed = delta(before["d2"], after_done, "dtm_recovery_claimed_total")
    check(claimed >= len(gids), "lease: d2's recovery claimed the sagas (%d)" % claimed)
    stats = topo.clear("lease")
    stats["acted"] += topo.clear("lease_answers")["acted"]
    healed = time.time()
    print("lease: partition held %.1f s, %d packets dropped" % (healed - cut, stats["acted"]),
          flush=True)
    # Healed, d1 learns that the sagas are no longer its own and drops them.
    dropped = wait_until(lambda: total(scrape(topo, "d1"), "dtm_transactions_in_memory") == 0, 60)
    let_go = time.time() - healed
    after = {n: scrape(topo, n) for n in REPLICAS}
    check(dropped, "lease: once healed, d1 lets go of the sagas it no longer owns (%.1f s)" %
          let_go)
    for line in describe_metrics(before, after):
        print("lease: %s" % line, flush=True)
    SUMMARY.append({
        "phase": "lease", "fault": "d1 cut off from the database %.1f s (lease %g s)" % (
            healed - cut, lease),
        "packets": stats["acted"], "d1_last_call_after_cut_s": round(last - cut, 3),
        "d2_first_call_after_cut_s": round(first_d2 - cut, 3) if first_d2 else None,
        "all_done_after_cut_s": round(done - cut, 1) if finished else None, "d1_let_go_after_heal_s": round(let_go, 1),
        "d2_claimed": claimed,
        "lease_losses": sum(delta(before[n], after[n], "dtm_lease_losses_total")
                            for n in REPLICAS),
        "seconds": round(time.time() - began, 1)})


def pg_sessions(client_addr):
    """The server's view of the sessions from `client_addr`, and the row locks they hold."""
    return subprocess.run(
        ["psql", PG_UNIX[0], "-At", "-c",
         "SELECT pid, state, now() - state_change, now() - xact_start, left(query, 100) "
         "FROM pg_stat_activity WHERE client_addr = '%s'" % client_addr,
         "-c", "SELECT l.pid, l.locktype, l.mode, c.relname FROM pg_locks l JOIN "
         "pg_stat_activity a USING (pid) LEFT JOIN pg_class c ON c.oid = l.relation "
         "WHERE a.client_addr = '%s' AND l.locktype IN ('relation', 'tuple', "
         "'transactionid') AND c.relname IS DISTINCT FROM 'pg_locks'" % client_addr],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


PG_UNIX = [None]
SUMMARY = []  # one dict of measured figures per phase, printed at the end


# --- main ---------------------------------------------------------------------------------

def start_replicas(topo, tmp, pg_tcp):
    procs = {}
    for node in REPLICAS:
        log = os.path.join(tmp, "%s.log" % node)
        procs[node] = topo.popen(node, [
            args.dtmd, "--listen=%s:%d" % (topo.addr(node), GRPC_PORT),
            "--http_listen=0.0.0.0:%d" % HTTP_PORT,
            "--store=" + pg_tcp + (" options='%s'" % args.store_options
                                   if args.store_options else ""),
            "--lease=%gs" % args.lease, "--recovery_interval=%gs" % (args.lease / 4),
            "--log_level=warning"], log)
    for node, p in procs.items():
        log = os.path.join(tmp, "%s.log" % node)

        def ready():
            try:
                scrape(topo, node)
                return True
            except OSError:
                return p.poll() is not None

        if not wait_until(ready, 60) or p.poll() is not None:
            raise RuntimeError("dtmd %s did not start:\n%s" % (node, open(log).read()))
    return procs


def main():
    missing = netns.missing_tools(args.netdelay)
    if missing:
        check(False, "network_faults_test needs %s; CI runs as root with them installed" %
              ", ".join(missing))
        return 1
    phases = [p for p in args.phases.split(",") if p]
    began = time.time()
    tmp = tempfile.mkdtemp(prefix="dtm-netfault-")
    os.chmod(tmp, 0o755)  # PostgreSQL (as postgres) makes its directory inside
    topo = netns.Topology(["db", "d1", "d2", "bank"], netdelay=args.netdelay, seed=args.seed)
    print("seed %d, subnet %s.0/24, logs in %s" % (args.seed, topo.subnet, tmp), flush=True)

    def on_term(signum, frame):
        raise SystemExit("terminated by signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    topo.up()
    try:
        topo.enter("bank")
        pg_tcp, pg_unix = topo.start_postgres("db", os.path.join(tmp, "pg"))
        PG_UNIX[0] = pg_unix
        replicas = start_replicas(topo, tmp, pg_tcp)
        seconds = args.seconds
        for phase in phases:
            if phase == "loss":
                workload_phase(topo, tmp, pg_unix, phase,
                               "%d%% of the packets between any two nodes dropped" % args.loss,
                               lambda: topo.loss(args.loss), seconds, seconds + 2)
            elif phase == "delay":
                workload_phase(topo, tmp, pg_unix, phase,
                               "every packet held %d+-%d ms by its sender" % (
                                   args.delay_ms, args.jitter_ms),
                               lambda: topo.delay(args.delay_ms, args.jitter_ms), seconds,
                               seconds + 2, threads=args.delay_threads)
            elif phase == "partition":
                def calls_timed_out(before, after, result, at_apply, at_clear):
                    transient = sum(delta(before[n], after[n], "dtm_branch_calls_total",
                                          outcome="transient") for n in REPLICAS)
                    check(transient > 0, "partition: branch calls failed and were retried "
                                         "(%d transient outcomes)" % transient)
                workload_phase(topo, tmp, pg_unix, phase,
                               "dtmd replicas and branch services cut off from each other "
                               "for %g s (request_timeout %g s)" % (
                                   args.partition_seconds, args.request_timeout),
                               lambda: topo.partition(list(REPLICAS), ["bank"]),
                               args.partition_seconds, args.partition_seconds + 6,
                               calls_timed_out)
            elif phase == "duplicate":
                def dup_and_reorder():
                    return [topo.duplicate(args.dup), topo.delay(5, 5, name="reorder")]
                workload_phase(topo, tmp, pg_unix, phase,
                               "%d%% of the packets duplicated, and reordered by a 5+-5 ms "
                               "jitter" % args.dup, dup_and_reorder, seconds, seconds + 2)
            elif phase == "lease":
                lease_phase(topo)
            else:
                check(False, "unknown phase %r" % phase)
        for node, p in replicas.items():
            check(p.poll() is None, "dtmd %s is still running after every phase" % node)
        print("--- summary (one JSON line per phase)", flush=True)
        for row in SUMMARY:
            print("SUMMARY %s" % json.dumps(row), flush=True)
        print("all phases took %.1f s" % (time.time() - began), flush=True)
    finally:
        if results["failed"]:
            for node in REPLICAS:
                show_tail(os.path.join(tmp, "%s.log" % node), "dtmd " + node)
        topo.down()
        if args.keep:
            print("kept %s" % tmp, flush=True)
        else:
            subprocess.run(["rm", "-rf", tmp])
    return 0


def show_tail(path, what, lines=25):
    """Prints the last lines of a log, without the warnings every start writes."""
    try:
        with open(path) as f:
            text = [line for line in f.read().splitlines()
                    if "accepts connections from other machines" not in line]
    except OSError:
        return
    print("--- last lines of %s's log:" % what)
    for line in text[-lines:]:
        print("    " + line[:300])


if __name__ == "__main__":
    run(main)
