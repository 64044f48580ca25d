#!/usr/bin/python3
"""What an operator sees of dtmd, checked against a known workload on a real dtmd and a real
Python gRPC branch service: exact counter values at /metrics (and DTM's /api/metrics), the
W3C trace context a client sends carried to every branch call with a new span id each time,
also by the dtmd that finishes the work after a kill -9 of the first, and JSON log lines that
record each state change once, with its trace id and without payloads.

Usage: observability_test.py --dtmd PATH --gen DIR   (DIR holds the generated dtm/v1 stubs)
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import urllib.request

import grpc

from e2e_support import (LOOPBACK, check, parse_args, run, serve_branches, start, dtmd_argv,
                         stop, wait_until)

args = parse_args("dtmd", "gen")
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = "00-%s-%s-01" % (TRACE, PARENT_SPAN)
KILL_TRACE = "0af7651916cd43dd8448eb211c80319c"
KILL_TRACEPARENT = "00-%s-b7ad6b7169203331-01" % KILL_TRACE
SECRET = b"SECRET-PAYLOAD"

released = threading.Event()  # until set, Action2 of "kill-*" answers UNAVAILABLE


def refuse(method, metadata, body):
    gid = metadata.get("dtm-gid", "")
    if method == "Action2" and gid.startswith("fail-"):
        return "insufficient funds"
    if method == "Action2" and gid.startswith("kill-") and not released.is_set():
        return (grpc.StatusCode.UNAVAILABLE, "not reachable yet")
    return None


def scrape(http_port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (http_port, path), timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def value(text, series):
    """The value of one series ("name{labels}" exactly as exposed) in a scrape, or None."""
    m = re.search(r"(?m)^%s (\S+)$" % re.escape(series), text)
    return float(m.group(1)) if m else None


def start_dtmd(tmp, name):
    """Starts dtmd (JSON logs, short leases); returns (process, gRPC address, HTTP port). Waits
    for the HTTP line, the later of the two that dtmd logs once it listens."""
    proc, http_port = start(dtmd_argv(args.dtmd, tmp, "--log_format=json", "--lease=2s",
                                      "--recovery_interval=500ms"), name, tmp,
                            pattern=r"on HTTP port (\d+)")
    log = open(os.path.join(tmp, name + ".log")).read()
    port = re.search(r"on port (\d+)", log).group(1)
    return proc, LOOPBACK + port, http_port


def saga(gid, target, wait=True):
    req = pb.SubmitRequest(gid=gid, trans_type=pb.SAGA)
    for i in (1, 2):
        req.steps.add(action=target("Action%d" % i), compensate=target("Compensate%d" % i),
                      payload=SECRET + b"-%d" % i)
    req.options.wait_result = wait
    req.options.retry_interval.FromMilliseconds(200)
    req.options.max_retry_interval.FromMilliseconds(400)
    return req


def spans_of(calls):
    return [c.get("traceparent", "") for c in calls]


def main():
    branches, server, port = serve_branches(refuse)
    target = lambda m: "127.0.0.1:%d/demo.Bank/%s" % (port, m)  # noqa: E731
    tmp = tempfile.mkdtemp(prefix="dtm-obs-")

    bad = subprocess.run([args.dtmd, "--log_format=xml"], capture_output=True, text=True)
    check(bad.returncode == 2 and "--log_format 'xml'" in bad.stderr,
          "a bad --log_format is refused, naming the flag and the value")

    dtmd, address, http_port = start_dtmd(tmp, "dtmd1")
    stub = pb_grpc.CoordinatorStub(grpc.insecure_channel(address))

    # The known workload: three sagas that succeed, one whose second action is refused (two
    # compensations), one that succeeds carrying the client's trace context.
    for i in range(3):
        r = stub.Submit(saga("ok-%d" % i, target), timeout=30)
        check(r.status == pb.SUCCEEDED, "saga ok-%d succeeds" % i)
    r = stub.Submit(saga("fail-1", target), timeout=30)
    check(r.status == pb.FAILED, "saga fail-1 fails")
    r = stub.Submit(saga("trace-1", target), timeout=30,
                    metadata=(("traceparent", TRACEPARENT), ("tracestate", "vendor=x")))
    check(r.status == pb.SUCCEEDED, "saga trace-1 succeeds")

    ctype, text = scrape(http_port)
    check(ctype.startswith("text/plain; version=0.0.4"), "/metrics is Prometheus' text format")
    expected = {
        'dtm_transactions_started_total{trans_type="saga"}': 5,
        'dtm_transactions_finished_total{status="succeeded",trans_type="saga"}': 4,
        'dtm_transactions_finished_total{status="failed",trans_type="saga"}': 1,
        'dtm_branch_calls_total{op="action",outcome="success",trans_type="saga"}': 9,
        'dtm_branch_calls_total{op="action",outcome="failure",trans_type="saga"}': 1,
        'dtm_branch_calls_total{op="compensate",outcome="success",trans_type="saga"}': 2,
        'dtm_branch_call_duration_seconds_count{op="action",trans_type="saga"}': 10,
        'dtm_api_requests_total{api="grpc",code="OK",method="/dtm.v1.Coordinator/Submit"}': 5,
        'dtm_transactions_pending{status="submitted"}': 0,
        'dtm_lease_losses_total': 0,
    }
    for series, want in expected.items():
        got = value(text, series)
        check(got == want, "%s is %s (got %s)" % (series, want, got))
    check(wait_until(lambda: value(scrape(http_port)[1], "dtm_transactions_in_memory") == 0),
          "dtm_transactions_in_memory drops to 0 once they ended")
    for stage in ("commit", "completion"):
        series = 'dtm_store_queue_length{stage="%s"}' % stage
        check(value(text, series) is not None, "%s is served" % series)
        # (Recovery's claims pass through the writer every so often: 0 most of the time.)
        check(wait_until(lambda: value(scrape(http_port)[1], series) == 0),
              "%s is 0 once the store is idle" % series)
    check((value(text, "dtm_store_commit_batch_size_count") or 0) >= 5,
          "store commits are counted with their batch size")
    check((value(text, "process_resident_memory_bytes") or 0) > 1e6,
          "process metrics are exported")
    check("gid" not in text and "demo.Bank" not in text and "ok-1" not in text,
          "no gid or target becomes a label")
    _, again = scrape(http_port, "/api/metrics")
    check((value(again, 'dtm_api_requests_total{api="http",code="200",method="/metrics"}') or 0)
          >= 1,
          "DTM's /api/metrics serves them too, and HTTP requests are counted by route")
    try:
        stub.Query(pb.QueryRequest(gid="no-such-gid"), timeout=10)
    except grpc.RpcError:
        pass
    _, text = scrape(http_port)
    check(value(text, 'dtm_api_requests_total{api="grpc",code="NOT_FOUND",'
                      'method="/dtm.v1.Coordinator/Query"}') == 1,
          "a failed call is counted with its code")

    # Trace context: the same trace id on every call, a new span id per call.
    calls = branches.of("trace-1")
    tps = spans_of(calls)
    check(len(tps) == 2 and all(t.startswith("00-%s-" % TRACE) and t.endswith("-01")
                                for t in tps),
          "each branch call of trace-1 carries the client's trace id and flags")
    span_ids = [t.split("-")[2] for t in tps if t.count("-") == 3]
    check(len(set(span_ids)) == len(span_ids) == 2 and PARENT_SPAN not in span_ids,
          "each call has a span id of its own")
    check(all(c.get("tracestate") == "vendor=x" for c in calls), "tracestate is forwarded")
    own = spans_of(branches.of("ok-0"))
    check(len(own) == 2 and len({t.split("-")[1] for t in own}) == 1 and
          TRACE not in own[0],
          "a transaction sent without a trace context gets a trace of its own")

    # Across a kill -9: a saga waits on a branch that keeps answering UNAVAILABLE; dtmd is
    # killed; a new dtmd on the same store finishes it with the same trace.
    stub.Submit(saga("kill-1", target, wait=False), timeout=30,
                metadata=(("traceparent", KILL_TRACEPARENT),))
    check(wait_until(lambda: branches.methods("kill-1").count("Action2") >= 2),
          "kill-1's second action is being retried")
    dtmd.send_signal(signal.SIGKILL)
    dtmd.wait()
    before = len(branches.of("kill-1"))
    released.set()
    dtmd2, address2, http_port2 = start_dtmd(tmp, "dtmd2")
    stub2 = pb_grpc.CoordinatorStub(grpc.insecure_channel(address2))
    check(wait_until(lambda: stub2.Query(pb.QueryRequest(gid="kill-1"), timeout=10)
                     .transaction.status == pb.SUCCEEDED, 60),
          "the restarted dtmd finishes kill-1")
    calls = branches.of("kill-1")
    tps = spans_of(calls)
    check(len(calls) > before, "calls were made after the restart")
    check(all(t.startswith("00-%s-" % KILL_TRACE) for t in tps),
          "every call of kill-1, before and after the kill, is in the client's trace")
    ids = [t.split("-")[2] for t in tps]
    check(len(set(ids)) == len(ids), "no span id is used twice across the restart")
    _, text2 = scrape(http_port2)
    check(value(text2, "dtm_recovery_claimed_total") == 1,
          "the restarted dtmd counts its recovery claim")
    check(stop(dtmd2) == 0, "dtmd stops cleanly")

    # The logs: JSON, one state change once, with its trace id, never a payload.
    lines = []
    for name in ("dtmd1", "dtmd2"):
        with open(os.path.join(tmp, name + ".log"), "rb") as f:
            raw = f.read()
        check(SECRET not in raw, "%s's log holds no payload" % name)
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                check(False, "a log line is JSON: %r" % line[:200])
    status = [(j.get("gid"), j.get("status")) for j in lines if j.get("msg") == "transaction status"]
    check(status.count(("ok-1", "SUBMITTED")) == 1 and status.count(("ok-1", "SUCCEEDED")) == 1,
          "ok-1's SUBMITTED and SUCCEEDED are logged once each")
    check(status.count(("fail-1", "ABORTING")) == 1 and status.count(("fail-1", "FAILED")) == 1,
          "fail-1's ABORTING and FAILED are logged once each")
    failed = [j for j in lines if j.get("msg") == "branch status" and j.get("gid") == "fail-1" and
              j.get("status") == "FAILED"]
    check(len(failed) == 1 and failed[0].get("op") == "action" and
          "insufficient funds" in failed[0].get("error", "") and failed[0].get("attempt") == 1,
          "the refused branch is logged with its op, attempt and error")
    traced = [j for j in lines if j.get("gid") in ("trace-1", "kill-1")]
    check(traced and all(j.get("trace_id") in (TRACE, KILL_TRACE) for j in traced),
          "every log line about a traced transaction carries its trace id")
    check(("kill-1", "SUCCEEDED") in status, "the restarted dtmd logs kill-1's end")
    server.stop(0)
    return 0


run(main)
