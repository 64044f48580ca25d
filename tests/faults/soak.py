#!/usr/bin/python3
"""Soak: the bank invariant workload while every infrastructure fault takes its turn.

Two dtmd replicas (d1, d2) on PostgreSQL over TCP, and the branch services with their
clients (their ledgers on the suite's PostgreSQL, DTM_TEST_PG, if set), each in a network
namespace of its own on one bridge (netns.py); beside them, in the
branch services' namespace, a third dtmd (s1) on its embedded SQLite store under fsync_shim
(fsync_shim.c). Two dtm-faultload workloads run for the whole soak: A through d1 and d2, B
through s1, each moving money between its own two banks. Meanwhile the faults rotate, each for
--fault_seconds, then --heal_seconds without any:

  loss        15 % of the packets between any two namespaces dropped
  delay       every packet held 200 +- 150 ms by its sender (jitter reorders them)
  duplicate   15 % of the packets sent twice
  cut-calls   d1 and d2 cut off from the branch services (longer than request_timeout)
  cut-d1-db   d1 cut off from the database (longer than its lease; d2 takes its work over)
  kill-d2     kill -9 of d2, restarted when the fault ends
  db-crash    PostgreSQL stopped as a crash stops it, restarted (crash recovery) at the end
  slow-disk   s1's fsyncs take 200-800 ms
  failed-disk s1's fsyncs fail with EIO
  kill-s1     kill -9 of s1 while its fsyncs fail, restarted on a healthy disk
  clock+1h    d1's wall clock one hour ahead (libfaketime), then back
  clock-1h    d1's wall clock one hour behind, then back

For each fault it prints what the workloads saw meanwhile (acknowledged transfers, UNAVAILABLE
answers) and what the fault did (packets acted on, fsyncs delayed or failed). At the end both
workloads settle and audit their banks: money conserved, every transfer applied exactly once
or not at all, nothing left in flight. Checks: both audits pass, every dtmd still runs, every
fault was applied.

Usage: soak.py --dtmd PATH --faultload PATH --netdelay PATH --shim PATH
         [--minutes M] [--fault_seconds S] [--heal_seconds S] [--faults a,b,...] [--keep]
Without --minutes, one rotation (what CI runs: about 3 minutes with the settle and audit); with
it, rotations until M minutes have passed, e.g. --minutes 30 for a long run. Needs root.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)

import netns  # noqa: E402
from e2e_support import check, run, wait_until  # noqa: E402
from fault_support import Faultload  # noqa: E402

GRPC_PORT, HTTP_PORT = 36790, 36789
S1_GRPC, S1_HTTP = 36800, 36801  # s1, on loopback in the branch services' namespace
LEASE = 4  # seconds
ALL_FAULTS = ("loss,delay,duplicate,cut-calls,cut-d1-db,kill-d2,db-crash,slow-disk,"
              "failed-disk,kill-s1,clock+1h,clock-1h")

parser = argparse.ArgumentParser()
parser.add_argument("--dtmd", required=True)
parser.add_argument("--faultload", required=True)
parser.add_argument("--netdelay", required=True)
parser.add_argument("--shim", required=True, help="the fsync_shim library")
parser.add_argument("--libfaketime",
                    default="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
parser.add_argument("--minutes", type=float, default=0,
                    help="rotate until this long has passed; 0: one rotation")
parser.add_argument("--fault_seconds", type=float, default=8)
parser.add_argument("--heal_seconds", type=float, default=4)
parser.add_argument("--faults", default=ALL_FAULTS)
parser.add_argument("--threads", type=int, default=4, help="each workload's clients")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
args = parser.parse_args()
if args.seed == 0:
    args.seed = int(time.time()) % 1000000


class Soak:
    def __init__(self, tmp):
        self.tmp = tmp
        self.topo = netns.Topology(["db", "d1", "d2", "bank"], netdelay=args.netdelay,
                                   seed=args.seed)
        self.pgdir = os.path.join(tmp, "pg")
        self.replicas = {}  # node -> Popen
        self.starts = {}
        self.disk = os.path.join(tmp, "disk.ctl")
        self.disk_stats = os.path.join(tmp, "disk.stats")
        self.clock = os.path.join(tmp, "d1.faketime")
        self.s1_dir = os.path.join(tmp, "s1")
        os.makedirs(self.s1_dir)
        self.set_disk("")
        self.set_clock(0)

    # --- what the faults act on -----------------------------------------------------------

    def set_disk(self, words):
        with open(self.disk + ".new", "w") as f:
            f.write("path=%s %s\n" % (self.s1_dir, words))
        os.replace(self.disk + ".new", self.disk)

    def disk_counters(self):
        try:
            with open(self.disk_stats) as f:
                return dict(w.split("=") for w in f.read().split())
        except OSError:
            return {}

    def set_clock(self, offset):
        with open(self.clock + ".new", "w") as f:
            f.write("%+d\n" % offset)
        os.replace(self.clock + ".new", self.clock)

    def start(self, node):
        """Starts (again) replica d1, d2 (on PostgreSQL) or s1 (SQLite under the shim)."""
        self.starts[node] = self.starts.get(node, 0) + 1
        log = os.path.join(self.tmp, "%s.log" % node)
        asan = "ASAN_OPTIONS=verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")
        if node == "s1":
            argv = ["env", "LD_PRELOAD=" + args.shim, "DTM_FSYNC_SHIM=" + self.disk,
                    "DTM_FSYNC_SHIM_STATS=" + self.disk_stats, asan, args.dtmd,
                    "--listen=127.0.0.1:%d" % S1_GRPC, "--http_listen=127.0.0.1:%d" % S1_HTTP,
                    "--store=sqlite://%s/dtm.db" % self.s1_dir, "--log_level=warning"]
            where, http = "bank", S1_HTTP
        else:
            argv = [args.dtmd, "--listen=%s:%d" % (self.topo.addr(node), GRPC_PORT),
                    "--http_listen=0.0.0.0:%d" % HTTP_PORT, "--store=" + self.pg_tcp,
                    "--lease=%ds" % LEASE, "--recovery_interval=1s", "--log_level=warning"]
            if node == "d1" and any(f.startswith("clock") for f in args.faults.split(",")):
                # d1's wall clock is whatever the clock file says (DONT_FAKE_MONOTONIC: a
                # step moves the wall clock only, as NTP's does).
                argv = ["env", "LD_PRELOAD=" + args.libfaketime,
                        "FAKETIME_TIMESTAMP_FILE=" + self.clock, "FAKETIME_CACHE_DURATION=1",
                        "DONT_FAKE_MONOTONIC=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", asan] + argv
            where, http = node, HTTP_PORT
        proc = self.topo.popen(where, argv, log)
        self.replicas[node] = proc

        def ready():
            try:
                self.topo.http_get(where, "http://127.0.0.1:%d/metrics" % http, timeout=2)
                return True
            except OSError:
                return proc.poll() is not None

        if not wait_until(ready, 60) or proc.poll() is not None:
            raise RuntimeError("dtmd %s did not start:\n%s" % (node, open(log).read()[-3000:]))

    def metric(self, node, name):
        """The value of metric `name` (no labels) on replica `node`'s /metrics."""
        text = self.topo.http_get(node, "http://127.0.0.1:%d/metrics" % HTTP_PORT)
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        return 0

    def kill(self, node):
        self.replicas[node].send_signal(signal.SIGKILL)
        self.replicas[node].wait()

    # --- the faults: name -> (begin, end), each returning a note of what it did ----------

    def faults(self):
        t = self.topo

        def net(apply_fn, name):
            return (lambda: apply_fn(),
                    lambda: "%(acted)d of %(seen)d packets" % t.clear(name))

        def disk(words):
            def end():
                c = self.disk_counters()
                self.set_disk("")
                return "fsyncs delayed %s, failed %s" % (c.get("delayed", 0), c.get("failed", 0))
            return (lambda: self.set_disk(words), end)

        def clock(offset):
            box = {}

            def begin():
                box["lost"] = self.metric("d1", "dtm_lease_losses_total")
                self.set_clock(offset)

            def end():
                self.set_clock(0)
                return "d1 lost %d leases meanwhile" % (
                    self.metric("d1", "dtm_lease_losses_total") - box["lost"])
            return (begin, end)

        def restart(node, before=None):
            def end():
                if before:
                    before()
                self.start(node)
                return "restarted"
            return (lambda: self.kill(node), end)

        return {
            "loss": net(lambda: t.loss(15, name="loss"), "loss"),
            "delay": net(lambda: t.delay(200, 150, name="delay"), "delay"),
            "duplicate": net(lambda: t.duplicate(15, name="duplicate"), "duplicate"),
            "cut-calls": net(lambda: t.partition(["d1", "d2"], ["bank"], name="cut_calls"),
                             "cut_calls"),
            "cut-d1-db": net(lambda: t.partition(["d1"], ["db"], name="cut_d1_db"), "cut_d1_db"),
            "kill-d2": restart("d2"),
            "db-crash": (lambda: t.crash_postgres(self.pgdir),
                         lambda: t.restart_postgres(self.pgdir) or "recovered"),
            "slow-disk": disk("fsync=delay:200-800"),
            "failed-disk": disk("fsync=fail"),
            "kill-s1": (lambda: (self.set_disk("fsync=fail"), self.kill("s1")),
                        restart("s1", before=lambda: self.set_disk(""))[1]),
            "clock+1h": clock(3600),
            "clock-1h": clock(-3600),
        }

    # --- the soak -------------------------------------------------------------------------

    def run(self):
        names = [f for f in args.faults.split(",") if f]
        table = self.faults()
        unknown = [n for n in names if n not in table]
        if unknown:
            check(False, "unknown faults %s (known: %s)" % (unknown, ALL_FAULTS))
            return 1
        period = args.fault_seconds + args.heal_seconds
        seconds = args.minutes * 60 or len(names) * period
        self.topo.up()
        self.pg_tcp, pg_unix = self.topo.start_postgres("db", self.pgdir)
        # The banks' ledgers are not under test: on the suite's PostgreSQL (its unix socket,
        # which no namespace fault reaches) when there is one, so that the database crash
        # hits dtmd's store only and the banks' connection pools do not stampede the server.
        bank_pg = os.environ.get("DTM_TEST_PG") or pg_unix
        for node in ("d1", "d2", "s1"):
            self.start(node)
        bank = self.topo.addr("bank")
        common = ["--bank_pg=" + bank_pg, "--seconds=%ds" % (seconds + 2),
                  "--threads=%d" % args.threads, "--settle_seconds=300s", "--seed=%d" % args.seed]
        a = Faultload(self.topo.exec_argv("bank", [
            args.faultload, "--coordinator=%s:%d,%s:%d" % (self.topo.addr("d1"), GRPC_PORT,
                                                           self.topo.addr("d2"), GRPC_PORT),
            "--listen_host=" + bank] + common), os.path.join(self.tmp, "workload-a.log"))
        b = Faultload(self.topo.exec_argv("bank", [
            args.faultload, "--coordinator=127.0.0.1:%d" % S1_GRPC,
            "--listen_host=127.0.0.1"] + common), os.path.join(self.tmp, "workload-b.log"))
        print("soak: seed %d, %d faults, %.0f s of faults, logs in %s" %
              (args.seed, len(names), seconds, self.tmp), flush=True)
        print("soak: %7s %-12s %6s %22s %22s  %s" % ("t", "fault", "held", "A: ok / unavailable",
                                                   "B: ok / unavailable", "what it did"),
              flush=True)
        began = time.time()
        applied = {}
        i = 0
        while time.time() - began < seconds - period / 2 or i < len(names):
            name = names[i % len(names)]
            i += 1
            begin, end = table[name]
            t0 = time.time()
            begin()
            wait_until(lambda: a.proc.poll() is not None, args.fault_seconds)
            note = end()
            t1 = time.time()
            applied[name] = applied.get(name, 0) + 1
            pa0, pa1, pb0, pb1 = a.at(t0), a.at(t1 + 1.2), b.at(t0), b.at(t1 + 1.2)
            wait_until(lambda: a.proc.poll() is not None, args.heal_seconds)
            print("soak: %6.0fs %-12s %5.1fs %10d / %-10d %10d / %-10d  %s" %
                  (t0 - began, name, t1 - t0, pa1[2] - pa0[2], pa1[4] - pa0[4],
                   pb1[2] - pb0[2], pb1[4] - pb0[4], note), flush=True)
            if a.proc.poll() is not None or b.proc.poll() is not None:
                break
        self.topo.clear_all()
        code_a, code_b = a.wait(timeout=900), b.wait(timeout=900)
        for node, proc in self.replicas.items():
            check(proc.poll() is None, "dtmd %s still runs (started %d times)" %
                  (node, self.starts[node]))
        for name, w, code in (("A (PostgreSQL, d1+d2)", a, code_a), ("B (SQLite, s1)", b, code_b)):
            r = w.result or {}
            print("soak: workload %s: %s transfers, %s succeeded, %s failed, %s never reached "
                  "dtmd; %.1f/s; UNAVAILABLE %s; duplicates absorbed %s; settled in %.1f s" %
                  (name, r.get("transfers"), r.get("succeeded"), r.get("failed"),
                   r.get("unknown"), r.get("throughput", 0), r.get("unavailable"),
                   r.get("duplicates_absorbed"), r.get("settle_seconds", 0)), flush=True)
            for v in w.violations[:10]:
                print("soak: " + v, flush=True)
            check(code == 0 and r.get("violations") == 0,
                  "workload %s: the bank invariant held (exit %s, %s violations)" %
                  (name, code, r.get("violations")))
        check(set(applied) == set(names), "every fault was applied (%s)" %
              ", ".join("%s x%d" % kv for kv in applied.items()))
        print("soak: %.1f minutes" % ((time.time() - began) / 60), flush=True)
        return 0


def main():
    missing = netns.missing_tools(args.netdelay)
    if missing:
        check(False, "soak needs %s; CI runs as root with them installed" % ", ".join(missing))
        return 1
    tmp = tempfile.mkdtemp(prefix="dtm-soak-")
    os.chmod(tmp, 0o755)  # PostgreSQL (as postgres) makes its directory inside
    soak = Soak(tmp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        return soak.run()
    finally:
        soak.topo.down()
        if not args.keep and not results_failed():
            shutil.rmtree(tmp, ignore_errors=True)


def results_failed():
    import e2e_support
    return e2e_support.results["failed"] > 0


if __name__ == "__main__":
    run(main)
