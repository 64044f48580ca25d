#!/usr/bin/python3
"""Two dtmd replicas on one PostgreSQL; the wall clock of one of them (A) jumps an hour
forward, or back, while it runs. Every time the replicas store or compare (leases, retry
times, timeouts) is the database's clock, which PgStore reads at connect and every 10 s and
carries forward on the monotonic clock in between, so a jump of A's wall clock must change
nothing. For each jump:

  - A's log shows the jump (its JSON lines carry A's own clock);
  - sagas whose branch answers UNAVAILABLE twice before it succeeds, submitted through A right
    after the jump, finish in the time they took before it (both printed);
  - sagas held in flight on A (their branch keeps answering UNAVAILABLE) for a whole lease
    after the jump stay A's: A goes on renewing their leases, B claims none, and A logs no
    lost lease;
  - A's clock jumps back by as much, A is killed (-9) right after that with those sagas in
    flight, and B finishes them within --lease + --recovery_interval + 3 s;
  - the lease_expire and next_retry_time of A's unfinished transactions, read from the
    table every 50 ms all along, stay within the database's now() +- (lease + 5 s), and the
    create_time of what A created is when it was submitted.

Meanwhile dtm-faultload moves money through both replicas, and its audit must pass (money
conserved, every transfer applied exactly once or not at all), unless --no_workload.

Without the store's monotonic clock (dtmd before it), the backward jump fails: A writes leases
and retry times an hour early, so B takes A's work from under it while A runs, and what A
creates is dated an hour back. (A forward jump made the next reading of the database's clock
due at once by the wall clock, so only what was written before the next idle tick was off.)

How the jump is made: A runs under Debian's libfaketime, the offset read from
FAKETIME_TIMESTAMP_FILE, into which the test writes "+3600" or "-3600", with
DONT_FAKE_MONOTONIC=1 (NTP steps the wall clock, never the monotonic one). libfaketime reads
that file again at most once a second (FAKETIME_CACHE_DURATION=1: with FAKETIME_NO_CACHE=1
every clock read of every thread opens and parses the file, and in runs that way A twice
stopped logging right after the jump), and the test waits for the jump to show in A's log.

libfaketime fakes what the process reads from the clock, not the clock the kernel waits on.
dtmd's own timed waits (the timer queue, the recovery loop, the store's writer) run on the
monotonic clock (server/runtime/monotonic_wait.h), which neither a real step nor libfaketime
moves. Any absolute CLOCK_REALTIME futex wait left (Debian's Abseil 20220623 turns its timed
waits into such waits, with a deadline computed from the faked clock, which the kernel
compares with the real one) would under plain libfaketime last an hour at +1 h and spin at
-1 h, where a real step moves both clocks together; a small shim preloaded after libfaketime
(FUTEX_SHIM below, compiled at the start with cc) puts such waits on the footing of a real
step: it turns each deadline into the time left by the faked clock, waited for on the
monotonic clock. With --faithful_waits the shim follows the faked clock through each wait, as
the kernel follows a real step through a wait under way: then a backward jump holds every
such wait for the size of the jump. dtmd passes that variant too (clock_jump_faithful_test,
with --no_workload so that nothing wakes its loops early); before its waits moved to the
monotonic clock, A's recovery loop slept through its lease renewals there and B took A's
sagas over while A ran.

Usage: clock_jump_test.py --dtmd PATH --gen DIR [--faultload PATH] [--pg CONNINFO]
         [--jumps +3600,-3600] [--lease 5] [--sagas 6] [--faithful_waits] [--no_workload]
         [--keep]
(--gen: the generated Python stubs of proto/dtm/v1; --pg defaults to DTM_TEST_PG.) The
default run takes about 70 s.
"""
import argparse
import calendar
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
parser.add_argument("--faultload", default="")
parser.add_argument("--gen", required=True)
parser.add_argument("--pg", default=os.environ.get("DTM_TEST_PG", ""))
parser.add_argument("--jumps", default="+3600,-3600",
                    help="A's clock offsets in seconds, one phase each")
parser.add_argument("--lease", type=int, default=5, help="--lease of both replicas, seconds")
parser.add_argument("--sagas", type=int, default=6, help="sagas with retries per phase")
parser.add_argument("--faithful_waits", action="store_true",
                    help="futex waits follow the faked clock through a jump (see above)")
parser.add_argument("--no_workload", action="store_true", help="no dtm-faultload")
parser.add_argument("--libfaketime", default="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
args = parser.parse_args()
sys.path.insert(0, args.gen)
import grpc  # noqa: E402
import psycopg2  # noqa: E402
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

RECOVERY_INTERVAL = 1  # seconds: dtmd's default --recovery_interval
RETRY_INTERVAL_MS = 200
TERMINAL = (pb.SUCCEEDED, pb.FAILED)

# Preloaded into A after libfaketime (see the docstring): absolute CLOCK_REALTIME futex waits,
# whose deadline came from the faked clock, become waits on the monotonic clock for the time
# left by the faked clock. FUTEX_SHIM_FOLLOW set: in slices of at most 20 ms, each measuring
# what is left by the faked clock again, so that a jump during the wait moves its end as a
# real step would. Everything else goes to the real syscall().
FUTEX_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

static long (*real_syscall)(long, ...);

static int64_t now_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t); /* CLOCK_REALTIME: libfaketime's */
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (real_syscall == NULL) real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  int op = (int)a2;
  if (number != SYS_futex || (op & FUTEX_CMD_MASK) != FUTEX_WAIT_BITSET ||
      !(op & FUTEX_CLOCK_REALTIME) || a4 == 0) {
    return real_syscall(number, a1, a2, a3, a4, a5, a6);
  }
  const struct timespec* abs = (const struct timespec*)a4;
  const int64_t deadline = (int64_t)abs->tv_sec * 1000000000 + abs->tv_nsec;
  const int follow = getenv("FUTEX_SHIM_FOLLOW") != NULL;
  for (;;) {
    int64_t left = deadline - now_ns(CLOCK_REALTIME);
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (follow && left > 20000000) left = 20000000;
    int64_t until = now_ns(CLOCK_MONOTONIC) + left;
    struct timespec t = {until / 1000000000, until % 1000000000};
    long r = real_syscall(SYS_futex, a1, (long)(op & ~FUTEX_CLOCK_REALTIME), a3, (long)&t, a5, a6);
    if (!follow || r == 0 || errno != ETIMEDOUT) return r;
  }
}
"""


class Branches:
    """What the branch service answers: a saga of a "retry-" gid gets UNAVAILABLE for its
    first two calls, one of a "takeover-" gid while `refuse_takeover` is set; the rest OK."""

    def __init__(self):
        self.calls = {}
        self.lock = threading.Lock()
        self.refuse_takeover = True

    def __call__(self, method, metadata, body):
        gid = metadata.get("dtm-gid", "")
        with self.lock:
            self.calls[gid] = self.calls.get(gid, 0) + 1
            n = self.calls[gid]
        if gid.startswith("retry-") and n <= 2:
            return (grpc.StatusCode.UNAVAILABLE, "busy, try again")
        if gid.startswith("takeover-") and self.refuse_takeover:
            return (grpc.StatusCode.UNAVAILABLE, "busy until the replica that called is gone")
        return None

    def called(self, gid):
        with self.lock:
            return self.calls.get(gid, 0)


class Store:
    """Reads the replicas' table in PostgreSQL directly, with the database's own clock."""

    def __init__(self, schema):
        self.schema = schema
        self.conn = psycopg2.connect(args.pg)
        self.conn.autocommit = True

    def query(self, sql, *params):
        with self.conn.cursor() as c:
            c.execute(sql, params)
            return c.fetchall() if c.description else []

    def unfinished_of(self, pid):
        """(gid, lease_expire, next_retry_time, database now), microseconds, for each
        unfinished transaction owned by the dtmd process `pid` (owner: host/pid/random)."""
        return self.query(
            "SELECT gid, lease_expire, next_retry_time, "
            "(extract(epoch from clock_timestamp()) * 1000000)::bigint FROM %s.trans_global "
            "WHERE owner LIKE %%s AND status IN (%d, %d, %d)"
            % (self.schema, pb.PREPARED, pb.SUBMITTED, pb.ABORTING), "%%/%d/%%" % pid)

    def owners(self, gids):
        return dict(self.query("SELECT gid, owner FROM %s.trans_global WHERE gid = ANY(%%s)"
                               % self.schema, list(gids)))

    def create_times(self, gids):
        return dict(self.query("SELECT gid, create_time FROM %s.trans_global WHERE gid = ANY(%%s)"
                               % self.schema, list(gids)))

    def drop(self):
        self.query("DROP SCHEMA IF EXISTS %s CASCADE" % self.schema)
        self.conn.close()


class Sampler:
    """Reads A's unfinished rows every 50 ms on a thread (and a connection) of its own while it
    runs; keeps the largest distance of lease_expire and next_retry_time from the database's
    now()."""

    def __init__(self, schema, pid):
        self.store, self.pid = Store(schema), pid
        self.rows = 0
        self.worst = {"lease_expire": 0.0, "next_retry_time": 0.0}  # seconds
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping.is_set():
            for _, lease, retry, now in self.store.unfinished_of(self.pid):
                self.rows += 1
                for name, v in (("lease_expire", lease), ("next_retry_time", retry)):
                    if v is not None and abs(v - now) / 1e6 > abs(self.worst[name]):
                        self.worst[name] = (v - now) / 1e6
            self.stopping.wait(0.05)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.store.conn.close()


def saga(gid, target, wait):
    req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
    req.options.wait_result = wait
    req.options.retry_interval.FromMilliseconds(RETRY_INTERVAL_MS)
    # Backoff capped at 1 s: a saga held failing on A is due again within a second whenever
    # A dies, so that B's takeover waits for the lease, not for a long backoff.
    req.options.max_retry_interval.FromSeconds(1)
    req.options.request_timeout.FromSeconds(2)
    req.steps.add(action=target + "Do", compensate=target + "Undo")
    return req


def finish_times(stub, gids, started, seconds):
    """Polls Query until every gid is terminal or `seconds` pass; returns gid -> seconds from
    `started` to when it was first seen terminal (absent if it never was)."""
    done = {}

    def all_done():
        for gid in gids:
            if gid in done:
                continue
            try:
                if stub.Query(pb.QueryRequest(gid=gid), timeout=5).transaction.status in TERMINAL:
                    done[gid] = time.time() - started[gid]
            except grpc.RpcError:
                pass
        return len(done) == len(gids)

    wait_until(all_done, seconds)
    return done


def run_sagas(stub, target, prefix, n):
    """Submits n sagas of gid prefix-i at once (each from a thread of its own, waiting for its
    result); returns (gid -> seconds until it was terminal, gid -> when it was submitted)."""
    gids = ["%s-%d" % (prefix, i) for i in range(n)]
    started = {}

    def submit(gid):
        started[gid] = time.time()
        try:
            stub.Submit(saga(gid, target, True), timeout=30)
        except grpc.RpcError:
            pass  # finish_times tells

    threads = [threading.Thread(target=submit, args=(g,)) for g in gids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return finish_times(stub, gids, started, 30), started


class ReplicaA:
    """Replica A under libfaketime and the futex shim, its clock offset in `clock_file`."""

    def __init__(self, tmp, shim, store_flags):
        self.tmp, self.store_flags = tmp, store_flags
        self.clock_file = os.path.join(tmp, "a.faketime")
        self.set_clock(0)
        self.env = ["env", "LD_PRELOAD=%s %s" % (args.libfaketime, shim),
                    "FAKETIME_TIMESTAMP_FILE=" + self.clock_file, "FAKETIME_CACHE_DURATION=1",
                    "DONT_FAKE_MONOTONIC=1", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                    "ASAN_OPTIONS=verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")]
        if args.faithful_waits:
            self.env.append("FUTEX_SHIM_FOLLOW=1")
        self.starts = 0
        self.probes = 0
        self.address = None
        self.proc = None

    def set_clock(self, offset):
        with open(self.clock_file + ".new", "w") as f:
            f.write("%+d\n" % offset)
        os.replace(self.clock_file + ".new", self.clock_file)

    def start(self):
        self.starts += 1
        listen = ["--listen=" + self.address] if self.address else []
        name = "dtmd-a%d" % self.starts
        self.proc, port = es.start(
            self.env + es.dtmd_argv(args.dtmd, self.tmp, *(self.store_flags + listen),
                                    "--log_format=json", http_listen=""), name, self.tmp)
        self.log = os.path.join(self.tmp, name + ".log")
        self.address = es.LOOPBACK + port

    def clock_offset(self, stub):
        """How far A's clock is from the real one: A logs a saga's status with its own time in
        the line's "ts" (JSON lines); a saga of no steps, submitted now, is that line."""
        self.probes += 1
        gid = "clock-probe-%d-%d" % (self.starts, self.probes)
        sent = time.time()
        req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
        req.steps.add(action="")
        try:
            stub.Submit(req, timeout=10)
        except grpc.RpcError:
            return None
        found = []

        def logged():
            with open(self.log) as f:
                found[:] = [line for line in f if '"%s"' % gid in line and line.endswith("\n")]
            return found

        if not wait_until(logged, 10):
            return None
        ts = json.loads(found[0])["ts"]
        written = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
        return written + float("0" + ts[19:].rstrip("Z")) - sent

    def lease_lost(self):
        """How many times A logged losing a transaction's lease (to B, claiming it)."""
        with open(self.log) as f:
            return sum('"lease lost' in line for line in f)

    def jump(self, stub, offset):
        """Sets A's clock `offset` seconds from the real one and waits until A's log shows it
        (libfaketime reads the file again at most once a second); returns the offset the log
        shows last."""
        self.set_clock(offset)
        seen = []
        wait_until(lambda: seen.append(self.clock_offset(stub)) or
                   seen[-1] is not None and abs(seen[-1] - offset) < 60, 10)
        return seen[-1]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def build_futex_shim(tmp):
    src = os.path.join(tmp, "futex_shim.c")
    out = os.path.join(tmp, "futex_shim.so")
    with open(src, "w") as f:
        f.write(FUTEX_SHIM)
    subprocess.check_call([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", out, src,
                           "-ldl"])
    return out


def main():
    if not args.pg:
        print("FAIL no PostgreSQL: set DTM_TEST_PG or pass --pg")
        return 1
    if not args.no_workload and not args.faultload:
        print("FAIL --faultload is required unless --no_workload")
        return 1
    tmp = tempfile.mkdtemp(prefix="dtm-clock-")
    store = Store("clock_jump_%d" % os.getpid())
    try:
        code = scenario(tmp, store)
    except BaseException:
        print("(temporary files: %s)" % tmp, flush=True)
        raise
    finally:
        store.drop()
    if args.keep or code or es.results["failed"]:
        print("(temporary files kept: %s)" % tmp, flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


def scenario(tmp, store):
    jumps = [int(j) for j in args.jumps.split(",") if j]
    shim = build_futex_shim(tmp)
    branches = Branches()
    _, branch_server, branch_port = serve_branches(branches)
    target = "127.0.0.1:%d/clock.Bank/" % branch_port
    flags = ["--store=" + args.pg, "--schema=" + store.schema, "--lease=%ds" % args.lease,
             "--recovery_interval=%ds" % RECOVERY_INTERVAL]

    a = ReplicaA(tmp, shim, flags)
    a.start()
    b_dir = os.path.join(tmp, "b")
    os.mkdir(b_dir)
    b_proc, b_port = es.start(es.dtmd_argv(args.dtmd, b_dir, *flags, http_listen=""), "dtmd-b",
                              b_dir)
    b = pb_grpc.CoordinatorStub(grpc.insecure_channel(es.LOOPBACK + b_port))

    seconds_per_jump = 16 + 2 * args.lease
    load = None
    if not args.no_workload:
        load = Faultload(
            [args.faultload, "--coordinator=%s,%s%s" % (a.address, es.LOOPBACK, b_port),
             "--bank_pg=" + args.pg, "--seconds=%ds" % (8 + seconds_per_jump * len(jumps)),
             "--transfers=1000000", "--threads=4", "--settle_seconds=180s"],
            os.path.join(tmp, "faultload.log"), es.procs)

    stub_a = pb_grpc.CoordinatorStub(grpc.insecure_channel(a.address))
    base, _ = run_sagas(stub_a, target, "retry-base", args.sagas)
    normal = max(base.values()) if len(base) == args.sagas else None
    print("before any jump: %d sagas with 2 retries each through A took at most %s s"
          % (args.sagas, "%.2f" % normal if normal else "?"), flush=True)
    check(normal is not None, "sagas with retries through A finish before any jump")
    normal = normal or 1.0

    for jump in jumps:
        name = "clock %+dh" % (jump // 3600) if jump % 3600 == 0 else "clock %+ds" % jump
        tag = "fwd" if jump > 0 else "back"
        stub_a = pb_grpc.CoordinatorStub(grpc.insecure_channel(a.address))
        sampler = Sampler(store.schema, a.proc.pid)
        offset = a.jump(stub_a, jump)
        check(offset is not None and abs(offset - jump) < 60,
              "%s: A's wall clock jumped (A's log says it is %s s off)"
              % (name, "%+.0f" % offset if offset is not None else "?"))

        # Sagas held in flight on A (their branch answers UNAVAILABLE for as long as A lives).
        branches.refuse_takeover = True
        held = ["takeover-%s-%d" % (tag, i) for i in range(3)]
        started = {}
        for gid in held:
            started[gid] = time.time()
            try:
                stub_a.Submit(saga(gid, target, False), timeout=10)
            except grpc.RpcError as e:
                print("submitting %s through A: %s" % (gid, e.code().name))

        took, submitted = run_sagas(stub_a, target, "retry-" + tag, args.sagas)
        started.update(submitted)
        print("%s: sagas with retries through A took at most %s s (before the jump: %.2f s)"
              % (name, "%.2f" % max(took.values()) if took else "?", normal), flush=True)
        bound = max(3.0, 3 * normal)
        check(len(took) == args.sagas and max(took.values()) < bound,
              "%s: sagas with retries through A finish in normal time (< %.1f s)" % (name, bound))

        # A whole lease on: A must have gone on renewing the held sagas' leases.
        wait_until(lambda: all(branches.called(g) >= 2 for g in held), 10)

        def taken_from_a():
            owners = store.owners(held)
            return len(owners) < len(held) or any(
                "/%d/" % a.proc.pid not in o for o in owners.values())

        stolen = wait_until(taken_from_a, args.lease + 2)
        check(not stolen, "%s: A still holds its sagas in flight a lease after the jump (owners: "
              "%s)" % (name, sorted(set(store.owners(held).values()))))

        # Back by as much, and A killed right after that jump: B must take the held sagas over.
        back = a.jump(stub_a, 0)
        check(back is not None and abs(back) < 60,
              "%s: and back (A's log says its clock is %s s off)"
              % (name, "%+.0f" % back if back is not None else "?"))
        sampler.stop()
        lost = a.lease_lost()
        a.kill()
        killed = time.time()
        branches.refuse_takeover = False
        taken = finish_times(b, held, {g: killed for g in held}, args.lease + 60)
        bound = args.lease + RECOVERY_INTERVAL + 3
        print("%s: A killed right after its clock jumped back, with %d sagas in flight; B "
              "finished them %s s after the kill (lease %d s, recovery interval %d s)"
              % (name, len(held), "%.2f" % max(taken.values()) if taken else "never",
                 args.lease, RECOVERY_INTERVAL), flush=True)
        check(len(taken) == len(held) and max(taken.values()) <= bound,
              "%s: B takes A's work over within lease + recovery interval + 3 s (%d s)"
              % (name, bound))

        print("%s: of A's unfinished rows (%d samples), the farthest lease_expire was %+.1f s "
              "from the database's now(), the farthest next_retry_time %+.1f s"
              % (name, sampler.rows, sampler.worst["lease_expire"],
                 sampler.worst["next_retry_time"]), flush=True)
        limit = args.lease + 5
        check(sampler.rows > 0 and abs(sampler.worst["lease_expire"]) <= limit,
              "%s: the leases A wrote stay within the database's now() +- %d s" % (name, limit))
        check(sampler.rows > 0 and abs(sampler.worst["next_retry_time"]) <= limit,
              "%s: the retry times A wrote stay within the database's now() +- %d s"
              % (name, limit))
        check(lost == 0, "%s: A lost no lease to B while it ran (%d 'lease lost' lines in its log)"
              % (name, lost))
        created = store.create_times(started)
        off = [created[g] / 1e6 - started[g] for g in created]
        worst = max(off, key=abs) if off else 0
        check(len(created) == len(started) and abs(worst) < 5,
              "%s: what A created carries the database's time (create_time at most %+.1f s from "
              "when it was submitted)" % (name, worst))
        a.start()

    if load:
        code = load.wait(8 + seconds_per_jump * len(jumps) + 300)
        r = load.result or {}
        print("workload: exit %s, RESULT %s" % (code, json.dumps(r)), flush=True)
        for line in load.violations[:20]:
            print("  " + line)
        check(code == 0 and r.get("violations") == 0 and r.get("not_terminal", 0) == 0,
              "the bank invariant holds (dtm-faultload exit 0, no violations, all terminal)")
    check(es.stop(b_proc) == 0 and es.stop(a.proc) == 0, "both replicas stop cleanly")
    branch_server.stop(0)
    return 0


if __name__ == "__main__":
    es.run(main)
