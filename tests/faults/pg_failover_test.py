#!/usr/bin/python3
"""dtmd on a Patroni cluster whose primary dies and is switched over while the bank invariant
workload and a probe run against it.

A real Patroni cluster (patroni_cluster.py: one etcd, two PostgreSQL 15 nodes, synchronous
replication) holds dtmd's store; two dtmd replicas connect to it with one multi-host URL and
target_session_attrs=read-write, which is how they find the primary after a failover.
dtm-faultload runs the bank invariant workload against both replicas (its banks keep their
ledgers on another PostgreSQL: DTM_TEST_PG, or a throwaway one this test starts), and a probe
submits a tiny saga every ~20 ms, spread over both replicas, recording each answer with its
time. Meanwhile, each round (--rounds, default 1):

  1. switches over to the standby with patronictl and waits until the cluster is healthy;
  2. kills the primary node with kill -9 (--kill node: its Patroni daemon and every postgres
     process at once, as if the machine died; --kill postmaster: postgres only), waits until
     Patroni promotes the synchronous standby, restarts the killed node and waits until it
     streams again as the synchronous standby (pg_rewind).

Why the whole node by default: killing only the postmaster leaves that node's Patroni alive
holding the leader key, and it would restart postgres in place after crash recovery (with
primary_start_timeout 0, as configured here, it fails over instead: --kill postmaster tests
that path). Killing Patroni too is the loss of the machine: nobody releases the leader key,
so the standby takes over only when its ttl (20 s, Patroni's minimum) runs out.

Checks: dtm-faultload exits 0 (money conserved, every transfer applied once or not at all);
every saga the probe saw acknowledged exists and is terminal at the end, through dtmd and in
the store on both nodes; neither dtmd exited; every probe error overlaps a failover window
and is UNAVAILABLE. Measured for each fault: from the kill (or the switchover command) to the
promotion of the standby, and to the probe's first acknowledged Submit on the new primary,
per replica; then min/median/max of each kind.

--variant async-loss shows what synchronous replication prevents: synchronous_mode off, the
primary's walsender to the standby stopped (SIGSTOP) while the probe's sagas are
acknowledged, the primary node killed, the standby promoted: the acknowledged sagas missing
afterwards are counted (and must be more than none).
--variant stall-loss is the same with synchronous_mode on, where no acknowledged saga may be
missing: PostgreSQL holds every COMMIT until the standby has it.

Usage: pg_failover_test.py --dtmd PATH --faultload PATH [--gen DIR] [--rounds N]
         [--seconds S] [--kill node|postmaster]
         [--variant failover|async-loss|stall-loss]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

import grpc  # noqa: E402

import e2e_support  # noqa: E402
from e2e_support import check, serve_branches, start, wait_until  # noqa: E402
from fault_support import Faultload  # noqa: E402
from patroni_cluster import PatroniCluster  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--dtmd", required=True)
    p.add_argument("--faultload", required=True)
    p.add_argument("--gen", help="generated Python stubs (default: <dtmd's dir>/../pygen)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of (switch over, kill the primary node)")
    p.add_argument("--seconds", type=float, default=0,
                   help="workload duration; 0: as long as the rounds take")
    p.add_argument("--kill", choices=("node", "postmaster"), default="node")
    p.add_argument("--variant", choices=("failover", "async-loss", "stall-loss"),
                   default="failover")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--threads", type=int, default=6, help="dtm-faultload's clients")
    p.add_argument("--probe_interval", type=float, default=0.02)
    p.add_argument("--lease", default="5s", help="dtmd --lease")
    p.add_argument("--bank_pg", default=os.environ.get("DTM_TEST_PG", ""),
                   help="conninfo for the banks' ledgers (default $DTM_TEST_PG, else a "
                        "throwaway PostgreSQL of this test's own)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args()
    gen = args.gen or os.path.join(os.path.dirname(os.path.abspath(args.dtmd)), "..", "pygen")
    sys.path.insert(0, gen)
    return args


args = parse_args()
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

TERMINAL = (pb.SUCCEEDED, pb.FAILED)


def fmt(t, t0):
    return "%+.2fs" % (t - t0) if t is not None else "never"


def summary(name, values):
    if not values:
        return "%s: no samples" % name
    return "%s: min %.2fs median %.2fs max %.2fs (n=%d)" % (
        name, min(values), statistics.median(values), max(values), len(values))


class Probe:
    """Submits a two-step saga every `interval` seconds, alternating over the dtmd replicas,
    without waiting for the previous answer (a hung call does not stop the probe), and
    records every answer: (gid, replica index, sent, answered, grpc code name)."""

    def __init__(self, addresses, branch_port, interval, prefix="probe", deadline=10):
        self.channels = [grpc.insecure_channel(a) for a in addresses]
        self.stubs = [pb_grpc.CoordinatorStub(c) for c in self.channels]
        self.target = "127.0.0.1:%d/probe.Bank/%%s" % branch_port
        self.interval = interval
        self.prefix = prefix
        self.deadline = deadline
        self.lock = threading.Lock()
        self.records = []  # (gid, replica, sent, done, code)
        self.in_flight = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.n = 0

    def start(self):
        self.thread.start()

    def _request(self, gid):
        req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
        for i in (1, 2):
            req.steps.add(action=self.target % ("Action%d" % i),
                          compensate=self.target % ("Compensate%d" % i), payload=b"p")
        req.options.retry_interval.FromMilliseconds(200)
        return req

    def _run(self):
        next_at = time.time()
        while not self.stopping.is_set():
            with self.lock:
                busy = self.in_flight >= 400
            if not busy:
                self.n += 1
                replica = self.n % len(self.stubs)
                gid = "%s-%06d" % (self.prefix, self.n)
                sent = time.time()
                fut = self.stubs[replica].Submit.future(self._request(gid), timeout=self.deadline)
                with self.lock:
                    self.in_flight += 1
                fut.add_done_callback(
                    lambda f, gid=gid, replica=replica, sent=sent: self._done(f, gid, replica,
                                                                             sent))
            next_at += self.interval
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.time()

    def _done(self, fut, gid, replica, sent):
        done = time.time()
        try:
            fut.result()
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        except Exception as e:  # noqa: BLE001 - recorded, then judged like any error
            code = type(e).__name__
        with self.lock:
            self.records.append((gid, replica, sent, done, code))
            self.in_flight -= 1

    def stop(self):
        self.stopping.set()
        self.thread.join()
        wait_until(lambda: self.in_flight == 0, 30)

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def acked(self):
        return [r for r in self.snapshot() if r[4] == "OK"]

    def first_ack(self, replica, sent_after):
        """The answer time of the first acknowledged Submit to `replica` sent at or after
        `sent_after`, or None."""
        done = [r[3] for r in self.snapshot()
                if r[4] == "OK" and r[1] == replica and r[2] >= sent_after]
        return min(done) if done else None

    def acks_since(self, t):
        return sum(1 for r in self.snapshot() if r[4] == "OK" and r[2] >= t)


def start_dtmds(tmp, store, n):
    """n dtmd replicas on the cluster; returns [(process, gRPC address)]."""
    out = []
    for i in range(n):
        d = os.path.join(tmp, "dtmd%d" % i)
        os.makedirs(d)
        argv = [args.dtmd, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                "--store=" + store, "--lease=" + args.lease, "--recovery_interval=1s",
                "--shutdown_grace=2s"]
        proc, port = start(argv, "dtmd%d" % i, tmp)
        out.append((proc, "127.0.0.1:" + port))
    return out


def bank_database(tmp):
    """The conninfo of the PostgreSQL the banks use: --bank_pg / $DTM_TEST_PG, else a
    throwaway server of our own (stopped at exit)."""
    if args.bank_pg:
        return args.bank_pg
    d = os.path.join(tmp, "bankpg")
    script = os.path.join(REPO, "scripts", "pg-throwaway.sh")
    port = str(20000 + os.getpid() % 20000)
    out = subprocess.run([script, "fresh", d, port], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.strip().splitlines()[-1]
    cleanups.append(lambda: subprocess.run([script, "destroy", d], check=False))
    return out


def dtmd_log_counts(tmp, n):
    """Lines of interest in each dtmd's log."""
    out = []
    for i in range(n):
        with open(os.path.join(tmp, "dtmd%d.log" % i), errors="replace") as f:
            text = f.read()
        out.append({
            "lost_connection": text.count("lost the PostgreSQL connection"),
            "restored": text.count("PostgreSQL connection restored"),
            "unknown_commits": text.count("commit with unknown outcome resolved"),
            "outcomes": [o.strip('"') for o in re.findall(
                r"commit with unknown outcome resolved.*?outcome=(\"[^\"]*\"|\S+)", text)],
        })
    return out


def wait_probe_acks(probe, since, count, timeout):
    return wait_until(lambda: probe.acks_since(since) >= count, timeout)


class Fault:
    def __init__(self, kind, number):
        self.kind, self.number = kind, number
        self.t0 = None          # the kill, or the switchover command
        self.t_down = None      # the old primary stopped taking writes
        self.t_promoted = None  # the new primary's postgres left recovery
        self.first_ack = {}     # replica -> time of its first acknowledged Submit
        self.rejoined = None    # the cluster was healthy again
        self.rewind = ""        # how the old primary came back


def run_kill(cluster, probe, nreplicas, number):
    r = Fault("kill-" + args.kill, number)
    old = cluster.primary()
    new = [n for n in cluster.nodes if n != old][0]
    # From here on the old node's log tells how it came back (a live Patroni may start
    # rewinding it before the new primary is even confirmed).
    log_before = len(cluster.nodes[old].patroni_log())
    if args.kill == "node":
        r.t0 = cluster.kill_node(old)
    else:
        r.t0 = cluster.kill_postmaster(old)
    r.t_down = r.t0
    cluster.wait_primary(new, timeout=cluster.ttl + 90)
    r.t_promoted = cluster.nodes[new].pg_log_event(
        r"selected new timeline ID|archive recovery complete", r.t0)
    for i in range(nreplicas):
        wait_until(lambda: probe.first_ack(i, r.t_down) is not None, 60)
        r.first_ack[i] = probe.first_ack(i, r.t_down)
    if args.kill == "node":
        cluster.start_node(old)
    cluster.wait_healthy(180)
    r.rejoined = time.time()
    log = cluster.nodes[old].patroni_log()[log_before:]
    if "reinitializ" in log or "removing data directory" in log.lower():
        r.rewind = "copied afresh"
    elif "pg_rewind" in log:
        r.rewind = "pg_rewind"
    else:
        r.rewind = "no rewind needed"
    return r


def run_switchover(cluster, probe, nreplicas, number):
    r = Fault("switchover", number)
    old = cluster.primary()
    new = [n for n in cluster.nodes if n != old][0]
    r.t0, cp = cluster.switchover(old, new)
    check(cp.returncode == 0, "fault %d: patronictl switchover %s -> %s succeeds" % (
        number, old, new))
    if cp.returncode != 0:
        print(cp.stdout)
    cluster.wait_primary(new, timeout=90)
    # Until the old primary's postgres is told to shut down, it commits what it is sent:
    # acknowledgements before that moment come from it, not from the new primary.
    r.t_down = cluster.nodes[old].pg_log_event(r"received (fast|smart|immediate) shutdown",
                                               r.t0) or r.t0
    r.t_promoted = cluster.nodes[new].pg_log_event(
        r"selected new timeline ID|archive recovery complete", r.t0)
    for i in range(nreplicas):
        wait_until(lambda: probe.first_ack(i, r.t_down) is not None, 60)
        r.first_ack[i] = probe.first_ack(i, r.t_down)
    cluster.wait_healthy(180)
    r.rejoined = time.time()
    r.rewind = "demoted cleanly"
    return r


def check_probe(probe, faults, dtmds, cluster):
    records = probe.snapshot()
    acked = [r for r in records if r[4] == "OK"]
    errors = [r for r in records if r[4] != "OK"]
    codes = {}
    for e in errors:
        codes[e[4]] = codes.get(e[4], 0) + 1
    print("probe: %d submits, %d acknowledged, errors by code: %s" % (
        len(records), len(acked), json.dumps(codes, sort_keys=True)))
    check(len(acked) > 0 and len(records) == probe.n,
          "probe: every submit was answered (%d of %d)" % (len(records), probe.n))

    # An error belongs to a fault if the call overlapped that fault's outage: sent
    # before its replica's first acknowledged Submit on the new primary, answered after the
    # fault began.
    def window_of(e):
        for r in faults:
            end = r.first_ack.get(e[1])
            if end is not None and e[2] <= end and e[3] >= r.t0:
                return r
        return None
    stray = [e for e in errors if window_of(e) is None]
    check(not stray, "probe: every error overlaps a failover window (%d outside)" % len(stray))
    for e in stray[:10]:
        print("   outside any window: %s replica %d sent %.3f answered %.3f %s" % e)
    # UNAVAILABLE: dtmd had no primary to write to. DEADLINE_EXCEEDED is legitimate only for
    # a call already on its way when the primary went (sent before, or within a second after,
    # its shutdown or death): its COMMIT may have gone out unanswered, and dtmd keeps the
    # caller waiting until a primary says whether it committed rather than guess; a client
    # learns the outcome by submitting the same gid again.
    def explained(e):
        if e[4] == "UNAVAILABLE":
            return True
        r = window_of(e)
        return e[4] == "DEADLINE_EXCEEDED" and r is not None and e[2] <= r.t_down + 1.0
    unexplained = [e for e in errors if not explained(e)]
    check(not unexplained, "probe: every error is UNAVAILABLE, or DEADLINE_EXCEEDED for a "
          "Submit in flight when the primary went (%d are not: %s)" % (
              len(unexplained), sorted({e[4] for e in unexplained})))
    for e in unexplained[:10]:
        print("   unexplained: %s replica %d sent %.3f answered %.3f %s" % e)
    for e in errors:
        r = window_of(e)
        if e[4] != "UNAVAILABLE" and r is not None:
            print("   %s %s to dtmd%d: sent %+.2fs, answered %+.2fs from fault %d (%s)" % (
                e[4], e[0], e[1], e[2] - r.t_down, e[3] - r.t_down, r.number, r.kind))
    for r in faults:
        n = sum(1 for e in errors if window_of(e) is r)
        print("   fault %d %s: %d probe errors in its window" % (r.number, r.kind, n))

    # Every acknowledged saga exists and ends, as dtmd tells it.
    stubs = [pb_grpc.CoordinatorStub(grpc.insecure_channel(a)) for _, a in dtmds]
    pending = {r[0] for r in acked}
    missing = set()
    statuses = {}

    def sweep():
        for gid in sorted(pending):
            try:
                t = stubs[hash(gid) % len(stubs)].Query(pb.QueryRequest(gid=gid),
                                                        timeout=10).transaction
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    missing.add(gid)
                    pending.discard(gid)
                continue
            if t.status in TERMINAL:
                statuses[gid] = t.status
                pending.discard(gid)
        return not pending
    wait_until(sweep, 120)
    check(not missing, "probe: every acknowledged saga exists, through dtmd (%d of %d missing%s)"
          % (len(missing), len(acked), ": " + ", ".join(sorted(missing)[:10]) if missing else ""))
    check(not pending, "probe: every acknowledged saga is terminal (%d still not)" % len(pending))
    check(all(s == pb.SUCCEEDED for s in statuses.values()),
          "probe: every acknowledged saga succeeded (%d failed)" %
          sum(1 for s in statuses.values() if s != pb.SUCCEEDED))

    # And in the store itself, on the primary and (replicated) on the standby.
    acked_gids = {r[0] for r in acked}
    errored_stored = 0
    primary = cluster.primary()
    rows = cluster.nodes[primary].query(
        "SELECT gid, status FROM trans_global WHERE gid LIKE %s", (probe.prefix + "-%",))
    stored = {g for g, _ in rows}
    check(acked_gids <= stored, "store: the primary (%s) holds every acknowledged saga "
          "(%d missing)" % (primary, len(acked_gids - stored)))
    errored_stored = len({e[0] for e in errors} & stored)
    deadline = {e[0] for e in errors if e[4] == "DEADLINE_EXCEEDED"}
    print("probe: %d Submits that got an error were stored anyway (%d of the %d "
          "DEADLINE_EXCEEDED): a client retries with the same gid to learn the outcome" % (
              errored_stored, len(deadline & stored), len(deadline)))
    lsn = cluster.nodes[primary].query("SELECT pg_current_wal_lsn()::text")[0][0]
    for name, node in cluster.nodes.items():
        if name == primary:
            continue
        caught_up = wait_until(lambda: node.query(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0], 60)
        rows = node.query("SELECT gid FROM trans_global WHERE gid LIKE %s",
                          (probe.prefix + "-%",))
        check(caught_up and acked_gids <= {g for g, in rows},
              "store: the standby (%s) holds every acknowledged saga too" % name)


def failover_test(tmp):
    cluster = PatroniCluster(tmp, nodes=2, synchronous=True)
    clusters.append(cluster)
    t = time.time()
    cluster.start()
    print("cluster: etcd + 2 PostgreSQL nodes up in %.1fs (ttl %ds, loop_wait %ds, "
          "retry_timeout %ds, synchronous_mode on)" % (time.time() - t, cluster.ttl,
                                                       cluster.loop_wait, cluster.retry_timeout))
    store = cluster.conninfo()
    print("store: %s" % store)
    dtmds = start_dtmds(tmp, store, args.replicas)
    check(True, "dtmd accepts the multi-host URL with target_session_attrs=read-write")
    addresses = [a for _, a in dtmds]

    _, branch_server, branch_port = serve_branches(lambda m, md, b: None)
    probe = Probe(addresses, branch_port, args.probe_interval)
    probe.start()
    check(wait_probe_acks(probe, 0, 20, 30), "probe: sagas are acknowledged before any fault")

    # Each round is a switchover, then the kill of the primary node: the killed node's rejoin
    # (crash recovery and pg_rewind, half a minute on two busy cores) then overlaps the
    # workload's settling rather than lengthening the run. The workload must submit until the
    # kill's outage is over (~30 s: Patroni's ttl); a round takes about 90 s in all.
    seconds = args.seconds or 60 + 90 * (args.rounds - 1)
    bank_pg = bank_database(tmp)
    load = Faultload([args.faultload, "--coordinator=" + ",".join(addresses),
                      "--bank_pg=" + bank_pg, "--seconds=%ds" % seconds,
                      "--transfers=100000000", "--threads=%d" % args.threads,
                      "--settle_seconds=240s"],
                     os.path.join(tmp, "faultload.log"), e2e_support.procs)
    check(wait_until(lambda: load.ok_at(time.time()) >= 10, 60),
          "dtm-faultload: transfers succeed before any fault")

    faults = []
    for i in range(1, args.rounds + 1):
        for kind in ("switchover", "kill"):
            if faults:
                # The previous fault is over: the probe goes through again, and the
                # synchronous standby is in place, before the next one.
                wait_probe_acks(probe, time.time(), 25, 60)
            run = run_kill if kind == "kill" else run_switchover
            r = run(cluster, probe, len(dtmds), len(faults) + 1)
            faults.append(r)
            acks = "  ".join("dtmd%d %s" % (k, fmt(v, r.t0)) for k, v in r.first_ack.items())
            print("fault %d %-16s promoted %s, first acknowledged Submit on the new primary: "
                  "%s; healthy again %s (%s)" % (r.number, r.kind, fmt(r.t_promoted, r.t0),
                                                  acks, fmt(r.rejoined, r.t0), r.rewind),
                  flush=True)
            recovered = [v for v in r.first_ack.values() if v is not None]
            check(len(recovered) == len(dtmds),
                  "fault %d: every replica acknowledges Submits on the new primary" % r.number)
            check(recovered and load.submitted_between(r.t0, max(recovered)) > 0,
                  "fault %d: dtm-faultload was submitting through the outage" % r.number)

    code = load.wait(seconds + 400)
    result = load.result
    print("faultload: exit %d, %s" % (code, json.dumps(result)))
    check(code == 0 and result is not None and result.get("violations") == 0,
          "dtm-faultload: the bank invariant holds (exit %d)" % code)
    for line in load.violations[:20]:
        print("   " + line)

    probe.stop()
    check_probe(probe, faults, dtmds, cluster)
    check(all(p.poll() is None for p, _ in dtmds), "neither dtmd exited")
    for i, c in enumerate(dtmd_log_counts(tmp, len(dtmds))):
        print("dtmd%d: lost its PostgreSQL connection %d times, restored %d; commits with an "
              "unknown outcome %d %s" % (i, c["lost_connection"], c["restored"],
                                         c["unknown_commits"], c["outcomes"]))

    for kind in sorted({r.kind for r in faults}):
        rs = [r for r in faults if r.kind == kind]
        print(summary("%s: fault -> standby promoted" % kind,
                      [r.t_promoted - r.t0 for r in rs if r.t_promoted]))
        print(summary("%s: fault -> first acknowledged Submit, every replica" % kind,
                      [max(r.first_ack.values()) - r.t0 for r in rs
                       if r.first_ack and None not in r.first_ack.values()]))
    for p, _ in dtmds:
        e2e_support.stop(p)
    branch_server.stop(0)
    cluster.stop()
    return 0


def stop_replication(cluster, primary, standby):
    """SIGSTOPs the walsender on `primary` that streams to `standby`; returns its pid.

    The sender, not the standby's walreceiver: a stopped walreceiver stops acknowledging, but
    the primary goes on sending into the socket, the kernel buffers it, and once the primary
    is killed and the walreceiver continued it reads that WAL anyway: nothing would be lost.
    A stopped walsender sends nothing; killing the primary node kills it too (SIGKILL ends a
    stopped process), so WAL written meanwhile never reaches the standby."""
    pid = cluster.nodes[primary].walsender_pid(standby)
    check(pid is not None, "the walsender to %s runs on %s (pid %s)" % (standby, primary, pid))
    os.kill(pid, signal.SIGSTOP)
    return pid


def loss_test(tmp, synchronous):
    """What a failover loses when the standby falls behind, with synchronous_mode off (the
    async-loss variant: losses expected, counted) or on (stall-loss: none allowed).

    The walsender to the standby is stopped while the probe submits, the primary node is
    killed, Patroni promotes the standby: acknowledged sagas missing from the new primary are
    lost. In synchronous mode PostgreSQL acknowledges no commit the standby has not flushed,
    so a client that waits for its COMMIT's answer loses nothing."""
    name = "stall-loss" if synchronous else "async-loss"
    cluster = PatroniCluster(tmp, nodes=2, synchronous=synchronous)
    clusters.append(cluster)
    cluster.start()
    dtmds = start_dtmds(tmp, cluster.conninfo(), 1)
    branches, branch_server, branch_port = serve_branches(lambda m, md, b: None)
    prefix = name.split("-")[0]
    # A client that waits out the failover (Submit deadline 90 s) gets the answer dtmd
    # gives once it has decided the outcome of writes the kill left unanswered.
    probe = Probe([a for _, a in dtmds], branch_port, args.probe_interval, prefix=prefix,
                  deadline=90)
    probe.start()
    check(wait_probe_acks(probe, 0, 20, 30), "probe: sagas are acknowledged")
    old = cluster.primary()
    new = [n for n in cluster.nodes if n != old][0]
    standby = cluster.nodes[new]
    sender = stop_replication(cluster, old, new)
    t_stop = time.time()
    try:
        # Asynchronous: commits go on being acknowledged. Synchronous: they wait for the
        # standby; 20 s is past dtmd's 5 s wait for an answer, and well within
        # wal_sender_timeout (60 s), after which Patroni would take the standby out of
        # synchronous_standby_names (and no longer promote it).
        wait_until(lambda: probe.acks_since(t_stop) >= 50, 20)
        t_kill = cluster.kill_node(old)
    finally:
        try:
            os.kill(sender, signal.SIGCONT)
        except ProcessLookupError:
            pass
    acked_before_kill = {r[0] for r in probe.acked() if r[3] < t_kill}
    acked_while_stopped = {r[0] for r in probe.acked() if r[2] >= t_stop and r[3] < t_kill}
    # What an asynchronous failover may lose: commits acknowledged after the walsender stopped,
    # and those acknowledged just before, whose WAL it had not sent yet (1 s is far more than
    # it takes to send a commit on loopback).
    acked_near_stop = {r[0] for r in probe.acked() if r[3] >= t_stop - 1.0 and r[3] < t_kill}
    print("%s: with the walsender stopped, %d Submits sent were acknowledged in %.1fs" % (
        name, len(acked_while_stopped), t_kill - t_stop))
    cluster.wait_primary(new, timeout=cluster.ttl + 90)
    t_promoted = time.time()
    # dtmd works on the new primary for a while: writes whose outcome it did not know at the
    # kill are resolved there.
    wait_probe_acks(probe, t_promoted, 100, 60)
    probe.stop()
    stored = {g for g, in standby.query("SELECT gid FROM trans_global WHERE gid LIKE %s",
                                        (prefix + "-%",))}
    acked = {r[0] for r in probe.acked()}
    lost = acked - stored
    lost_before_kill = acked_before_kill - stored
    called = {c.get("dtm-gid") for c in branches.calls}
    orphans = called - stored
    print("%s: promoted %+.1fs after the kill; %d sagas acknowledged before the kill, %d of "
          "them missing on the new primary; %d acknowledged in all, %d missing%s" % (
              name, t_promoted - t_kill, len(acked_before_kill), len(lost_before_kill),
              len(acked), len(lost), (": " + ", ".join(sorted(lost)[:8])) if lost else ""))
    print("%s: %d sagas whose branches dtmd called are unknown to the new primary" % (
        name, len(orphans)))
    for c in dtmd_log_counts(tmp, 1):
        print("%s: dtmd resolved %d commits with an unknown outcome: %s" % (
            name, c["unknown_commits"], c["outcomes"]))
    if synchronous:
        check(not lost, "stall-loss: no acknowledged saga is lost in synchronous mode "
              "(%d lost)" % len(lost))
        check(not orphans, "stall-loss: no saga whose branches were called is lost (%d lost)"
              % len(orphans))
    else:
        check(lost_before_kill and lost_before_kill <= acked_near_stop,
              "async-loss: acknowledged sagas are lost, only ones acknowledged while the "
              "standby was cut off or just before (%d lost)" % len(lost_before_kill))
    check(all(p.poll() is None for p, _ in dtmds), "dtmd did not exit")
    for p, _ in dtmds:
        e2e_support.stop(p)
    branch_server.stop(0)
    cluster.stop()
    return 0


clusters = []  # the Patroni cluster, once started: stopped before its files are removed
cleanups = []  # and anything else to stop before then


def main():
    tmp = tempfile.mkdtemp(prefix="dtm-pgfail-")
    print("temp dir: %s" % tmp, flush=True)
    ok = False
    try:
        if args.variant == "failover":
            code = failover_test(tmp)
        else:
            code = loss_test(tmp, synchronous=args.variant == "stall-loss")
        ok = code == 0 and e2e_support.results["failed"] == 0
        return code
    finally:
        for p in e2e_support.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not ok:
            # What the cluster and dtmd said last, before the files go.
            for c in clusters:
                print(c.describe())
            for name in sorted(os.listdir(tmp)):
                if name.startswith("dtmd") and name.endswith(".log"):
                    with open(os.path.join(tmp, name), errors="replace") as f:
                        print("--- %s (tail)" % name)
                        print("".join(f.readlines()[-20:]), end="")
        for c in clusters:
            c.stop()
        for fn in cleanups:
            fn()
        if args.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    e2e_support.run(main)
