#!/usr/bin/python3
"""dtmd on a slow and then failing disk: the bank invariant holds, and nothing is acknowledged
that the disk did not make durable.

dtmd runs with its embedded SQLite store under fsync_shim (LD_PRELOAD; fsync_shim.c says what
it does and why a shim), which this test switches through a control file while
dtm-faultload moves money between two banks (ledgers on PostgreSQL, DTM_TEST_PG or --pg)
and a probe of the test's own submits msgs (no wait), sagas (waiting for their result) and
prepares tccs, recording when each call went out, when its answer came and what it was.

  slow     fsync/fdatasync take 200-1000 ms: the probe's calls all succeed, the workload
           keeps completing transfers
  fail     every fsync fails (EIO): no call sent after the switch is answered OK before the
           switch back (a commit is durable only once its sync succeeded), every probe answer
           is UNAVAILABLE (never INTERNAL), dtmd stays up
  recover  syncs succeed again: the same dtmd process (no restart) answers OK again
  full     writes to the database fail with ENOSPC (EIO in every second round), then succeed
           again: as fail + recover
  crash    fsync fails again and dtmd is killed (-9) while it does; restarted on a good disk
           it opens its store (PRAGMA quick_check passes), every call it ever answered OK is
           there and reaches a terminal status, and the workload's audit passes
           (money conserved, every transfer applied exactly once or not at all)

Usage: disk_faults_test.py --dtmd PATH --faultload PATH --gen DIR [--shim LIB] [--pg CONNINFO]
         [--slow_seconds 12] [--fail_seconds 8] [--full_seconds 4] [--rounds 1]
         [--threads 4] [--seed N] [--keep]
(--gen: the generated Python stubs of proto/dtm/v1; --shim: the built fsync_shim, compiled
from fsync_shim.c next to this file with gcc when not given. More --rounds repeat slow, fail,
recover and full for a longer run.) The default run takes about 65 s.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e_support as es  # noqa: E402
from e2e_support import check, serve_branches, wait_until  # noqa: E402

sys.path.insert(0, HERE)
from fault_support import Faultload  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--dtmd", required=True)
parser.add_argument("--faultload", required=True)
parser.add_argument("--gen", required=True)
parser.add_argument("--shim", default="")
parser.add_argument("--pg", default=os.environ.get("DTM_TEST_PG", ""))
parser.add_argument("--slow_seconds", type=float, default=12)
parser.add_argument("--fail_seconds", type=float, default=8)
parser.add_argument("--full_seconds", type=float, default=4)
parser.add_argument("--rounds", type=int, default=1)
parser.add_argument("--threads", type=int, default=4)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
args = parser.parse_args()
sys.path.insert(0, args.gen)
import grpc  # noqa: E402
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

CALL_TIMEOUT = 20  # seconds: one probe call, on a disk that takes up to 1 s per sync
TERMINAL = (pb.SUCCEEDED, pb.FAILED)


class Disk:
    """The shim's control file: set() replaces it at once (write + rename, which the shim
    sees at its next call) and returns the time it took effect."""

    def __init__(self, tmp, db):
        self.path = os.path.join(tmp, "disk.ctl")
        self.stats_path = os.path.join(tmp, "disk.stats")
        self.db = db
        self.set("")

    def set(self, words):
        with open(self.path + ".new", "w") as f:
            f.write("path=%s %s\n" % (self.db, words))
        os.replace(self.path + ".new", self.path)
        return time.time()

    def stats(self):
        """The shim's counters in the current dtmd process (0s before its first sync)."""
        try:
            with open(self.stats_path) as f:
                return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", f.read())}
        except OSError:
            return collections.defaultdict(int)


Call = collections.namedtuple("Call", "kind gid sent answered code")


class Probe:
    """Calls dtmd in three loops on threads of their own, one per kind of call (so that a saga
    waiting for its result holds up only the sagas), recording every call."""

    KINDS = ("msg", "saga", "tcc")

    def __init__(self, address, branch_port):
        self.stub = pb_grpc.CoordinatorStub(grpc.insecure_channel(address))
        self.target = "127.0.0.1:%d/probe.Bank/" % branch_port
        self.calls = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(k,), daemon=True)
                        for k in self.KINDS]

    def options(self, wait):
        o = pb.TransOptions(wait_result=wait)
        o.retry_interval.FromMilliseconds(200)
        o.timeout_to_fail.FromSeconds(3)
        return o

    def call(self, kind, gid, fn):
        sent = time.time()
        try:
            fn()
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        with self.lock:
            self.calls.append(Call(kind, gid, sent, time.time(), code))
        return code == "OK"

    def one(self, kind, gid):
        if kind == "msg":
            req = pb.SubmitRequest(gid=gid, trans_type=pb.MSG, options=self.options(False))
            req.steps.add(action=self.target + "Deliver", payload=b"m")
            self.call("msg", gid, lambda: self.stub.Submit(req, timeout=CALL_TIMEOUT))
        elif kind == "saga":
            req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA, options=self.options(True))
            for i in (1, 2):
                req.steps.add(action=self.target + "Do%d" % i, compensate=self.target + "Undo%d" % i)
            self.call("saga", gid, lambda: self.stub.Submit(req, timeout=CALL_TIMEOUT))
        else:
            prep = pb.PrepareRequest(gid=gid, trans_type=pb.TCC, options=self.options(False))
            if self.call("prepare", gid, lambda: self.stub.Prepare(prep, timeout=CALL_TIMEOUT)):
                sub = pb.SubmitRequest(gid=gid, trans_type=pb.TCC)
                self.call("tcc-submit", gid, lambda: self.stub.Submit(sub, timeout=CALL_TIMEOUT))

    def loop(self, kind):
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            self.one(kind, "probe-%s-%d-%d" % (kind, os.getpid(), seq))
            self.stopping.wait(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=CALL_TIMEOUT * 2 + 5)

    def snapshot(self):
        with self.lock:
            return list(self.calls)

    def within(self, start, end):
        """Calls sent after `start` and answered before `end`."""
        return [c for c in self.snapshot() if c.sent > start and c.answered < end]

    def first_ok_after(self, t):
        oks = [c for c in self.snapshot() if c.sent >= t and c.code == "OK"]
        return min(oks, key=lambda c: c.answered) if oks else None


def start_workload(tmp, address, seconds):
    """dtm-faultload through `address` for `seconds`, its banks on --pg (fault_support)."""
    argv = [args.faultload, "--coordinator=" + address, "--bank_pg=" + args.pg,
            "--seconds=%ds" % int(seconds), "--transfers=1000000",
            "--threads=%d" % args.threads, "--settle_seconds=180s"]
    if args.seed:
        argv.append("--seed=%d" % args.seed)
    return Faultload(argv, os.path.join(tmp, "faultload.log"), es.procs)


def pause(seconds, alive):
    """Lets a phase run for `seconds` (the faults act meanwhile); returns early if dtmd died."""
    wait_until(lambda: alive.poll() is not None, seconds)


def build_shim(tmp):
    if args.shim:
        return args.shim
    out = os.path.join(tmp, "libfsync_shim.so")
    subprocess.check_call(["gcc", "-O2", "-shared", "-fPIC", "-o", out,
                           os.path.join(HERE, "fsync_shim.c"), "-ldl", "-pthread"])
    return out


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main():
    if not args.pg:
        print("FAIL no PostgreSQL for the banks: set DTM_TEST_PG or pass --pg")
        return 1
    tmp = tempfile.mkdtemp(prefix="dtm-disk-")
    try:
        code = scenario(tmp)
    except BaseException:
        print("(temporary files: %s)" % tmp, flush=True)
        raise
    if args.keep or code or es.results["failed"]:
        print("(temporary files kept: %s)" % tmp, flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


def scenario(tmp):
    shim = build_shim(tmp)
    db = os.path.join(tmp, "dtm.db")
    disk = Disk(tmp, db)
    _, branch_server, branch_port = serve_branches(lambda method, md, body: None)

    env = ["env", "LD_PRELOAD=" + shim, "DTM_FSYNC_SHIM=" + disk.path,
           "DTM_FSYNC_SHIM_STATS=" + disk.stats_path,
           # A sanitizer build's dtmd would refuse a library preloaded before its runtime.
           "ASAN_OPTIONS=verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")]
    dtmd, port = es.start(env + es.dtmd_argv(args.dtmd, tmp, http_listen=""), "dtmd", tmp)
    address = es.LOOPBACK + port

    baseline, recover = 6.0, 6.0
    round_seconds = args.slow_seconds + args.fail_seconds + recover + args.full_seconds + recover
    submit_seconds = baseline + args.rounds * round_seconds + 12
    print("phases: baseline %.0fs, %d x (slow %.0fs, fail %.0fs, recover %.0fs, full %.0fs, "
          "recover %.0fs), crash; workload submits for %.0fs"
          % (baseline, args.rounds, args.slow_seconds, args.fail_seconds, recover,
             args.full_seconds, recover, submit_seconds), flush=True)
    load = start_workload(tmp, address, submit_seconds)
    probe = Probe(address, branch_port)
    probe.start()
    pause(baseline, dtmd)
    now = time.time()
    base_rate = (load.ok_at(now) - load.ok_at(now - 3)) / 3.0  # the workload's own start aside

    for rnd in range(1, args.rounds + 1):
        tag = "round %d: " % rnd if args.rounds > 1 else ""
        # Slow: every sync takes 200-1000 ms.
        before = disk.stats()
        slow_on = disk.set("fsync=delay:200-1000")
        pause(args.slow_seconds, dtmd)
        slow_off = disk.set("")
        calls = probe.within(slow_on, slow_off)
        codes = collections.Counter(c.code for c in calls)
        lat = [c.answered - c.sent for c in calls]
        done_slow = load.ok_at(slow_off) - load.ok_at(slow_on)
        print("%sslow disk: %d probe calls, latency p50 %.2fs p95 %.2fs max %.2fs; workload "
              "%.1f ok calls/s (%.1f/s before); syncs delayed %d"
              % (tag, len(calls), percentile(lat, 0.5), percentile(lat, 0.95), max(lat or [0]),
                 done_slow / args.slow_seconds, base_rate,
                 disk.stats()["delayed"] - before["delayed"]), flush=True)
        check(disk.stats()["delayed"] > before["delayed"], tag + "the shim delayed dtmd's syncs")
        check(calls and set(codes) == {"OK"},
              tag + "slow disk: every probe call succeeds (%s)" % dict(codes))
        check(done_slow > 0, tag + "slow disk: the workload still completes transfers")

        # Fail: every sync fails.
        before = disk.stats()
        fail_on = disk.set("fsync=fail")
        pause(args.fail_seconds, dtmd)
        fail_off = disk.set("")
        fail_phase(tag + "failing fsync", probe, dtmd, fail_on, fail_off,
                   disk.stats()["failed"] - before["failed"], "failed syncs")
        recovered(tag + "after failing fsync", probe, load, dtmd, fail_off, recover)

        # Full: every write to the database fails with ENOSPC (odd rounds) or EIO (even ones).
        words, name = (("write=enospc", "disk full"), ("write=eio", "failing writes"))[
            (rnd - 1) % 2]
        before = disk.stats()
        full_on = disk.set(words)
        pause(args.full_seconds, dtmd)
        full_off = disk.set("")
        fail_phase(tag + name, probe, dtmd, full_on, full_off,
                   disk.stats()["writes_failed"] - before["writes_failed"], "failed writes")
        recovered(tag + "after " + name, probe, load, dtmd, full_off, recover)

    # Crash while syncs fail, restart on a good disk.
    crash_on = disk.set("fsync=fail")
    wait_until(lambda: any(c.code != "OK" for c in probe.within(crash_on, time.time())), 10)
    time.sleep(0.5)  # a few more failed commits: the last one is what the restart finds
    dtmd.send_signal(signal.SIGKILL)
    dtmd.wait()
    killed = disk.set("")
    try:
        dtmd, _ = es.start(env + es.dtmd_argv(args.dtmd, tmp, "--listen=" + address,
                                              http_listen=""), "dtmd-restarted", tmp)
    except RuntimeError as e:
        print(e)
        dtmd = None
    check(dtmd is not None, "dtmd restarts on the store it was killed on (its quick_check passes)")
    if dtmd is None:
        return 1
    first = wait_until(lambda: probe.first_ok_after(killed) is not None, 30)
    back = probe.first_ok_after(killed)
    check(first, "after the restart the probe's calls succeed again")
    if back:
        print("crash: killed during failing fsync; first OK answer %.2fs after the kill"
              % (back.answered - killed), flush=True)

    code = load.wait(submit_seconds + 240)
    probe.stop()
    r = load.result or {}
    print("workload: exit %s, RESULT %s" % (code, json.dumps(r)), flush=True)
    for v in load.violations[:20]:
        print("  " + v)
    check(code == 0 and r.get("violations") == 0 and r.get("not_terminal", 0) == 0,
          "the bank invariant holds (dtm-faultload exit 0, no violations, all terminal)")

    # Every call answered OK, in any phase, left a transaction the restarted dtmd has and
    # finishes; calls answered otherwise may or may not have (see the report below).
    stub = pb_grpc.CoordinatorStub(grpc.insecure_channel(address))
    calls = probe.snapshot()
    acked = sorted({c.gid for c in calls if c.code == "OK"})
    refused = sorted({c.gid for c in calls} - set(acked))
    status = {}

    def settled():
        for gid in acked:
            if status.get(gid) in TERMINAL:
                continue
            try:
                status[gid] = stub.Query(pb.QueryRequest(gid=gid), timeout=10).transaction.status
            except grpc.RpcError as e:
                status[gid] = e.code().name
        return all(status[g] in TERMINAL for g in acked)

    wait_until(settled, 90)
    missing = [g for g in acked if status.get(g) == "NOT_FOUND"]
    stuck = [(g, status.get(g)) for g in acked if status.get(g) not in TERMINAL]
    check(acked and not missing,
          "every one of the %d transactions the probe was answered OK for is in the store%s"
          % (len(acked), "" if not missing else " (missing: %s)" % missing[:10]))
    check(acked and not stuck, "and each reached a terminal status%s"
          % ("" if not stuck else " (not: %s)" % stuck[:10]))
    present = 0
    for gid in refused:
        try:
            stub.Query(pb.QueryRequest(gid=gid), timeout=10)
            present += 1
        except grpc.RpcError:
            pass
    print("probe: %d transactions answered OK, %d never answered OK; of those, %d exist "
          "after the restart (a commit whose sync failed is recovered from the WAL if no "
          "later commit overwrote it before the crash: its outcome was unknown, not failed)"
          % (len(acked), len(refused), present), flush=True)
    check(es.stop(dtmd) == 0, "dtmd stops cleanly at the end")
    branch_server.stop(0)
    return 0


def fail_phase(what, probe, dtmd, on, off, faults, unit):
    calls = probe.within(on, off)
    codes = collections.Counter(c.code for c in calls)
    acked = [c for c in calls if c.code == "OK"]
    print("%s: %d probe calls answered while it lasted: %s; %d %s"
          % (what, len(calls), dict(codes), faults, unit), flush=True)
    check(faults > 0, "%s: the shim made dtmd's %s" % (what, unit))
    check(calls and not acked, "%s: nothing sent meanwhile is acknowledged%s"
          % (what, "" if not acked else " (acknowledged: %s)" % acked[:5]))
    check(calls and set(codes) == {"UNAVAILABLE"},
          "%s: dtmd answers UNAVAILABLE, never INTERNAL (%s)" % (what, dict(codes)))
    check(dtmd.poll() is None, "%s: dtmd is still running" % what)


def recovered(what, probe, load, dtmd, off, seconds):
    ok_before = load.ok_at(off)
    wait_until(lambda: probe.first_ok_after(off) is not None, seconds)
    first = probe.first_ok_after(off)
    if first:
        print("%s: first OK answer %.2fs after the disk came back" % (what, first.answered - off),
              flush=True)
    check(first is not None and dtmd.poll() is None,
          "%s: the same dtmd process answers OK again" % what)
    pause(max(0.0, off + seconds - time.time()), dtmd)
    check(load.ok_at(time.time()) > ok_before, "%s: the workload completes transfers again" % what)


if __name__ == "__main__":
    es.run(main)
