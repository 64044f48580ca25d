#!/usr/bin/python3
"""DTM's own gRPC service, dtmgimp.Dtm, served by dtmd: requests built exactly as DTM's Go SDK
(client/dtmgrpc) builds them, sent with stubs generated from proto/dtmgimp, against a real dtmd
and real Python gRPC branch services; the same transactions seen through dtm.v1.

What DTM's Go SDK sends (dtmgimp.GetDtmRequest): TransOptions always present, Steps the JSON of
the steps ("null" without any), one BinPayload per step, RollbackReason on a tcc's Abort. Saga:
one Submit. TCC: Prepare, then per branch RegisterBranch{Data confirm/cancel, BusiPayload} and
the client's own call of its try, then Submit or Abort. XA: Prepare, each branch's action
(whose resource manager registers it with Data url, its phase-2 target), then Submit or Abort.
Msg: Prepare with QueryPrepared and the steps, then Submit with the same request.

Usage: dtmgimp_test.py --dtmd PATH --gen DIR   (DIR holds dtmgimp_pb2 and dtm/v1's stubs)
"""
import json
import os
import tempfile

import grpc

from e2e_support import (TIMEOUT, check, parse_args, raw_unary, run, serve_branches,
                         start_dtmd, stop, wait_until)

args = parse_args("dtmd", "gen")
import dtmgimp_pb2 as gpb  # noqa: E402
import dtmgimp_pb2_grpc as gpb_grpc  # noqa: E402
from dtm.v1 import coordinator_pb2 as pb  # noqa: E402
from dtm.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402
from google.protobuf import empty_pb2  # noqa: E402


def refuse(method, metadata, body):
    """The business service on /busi.Busi/<Method> refuses an action or try whose body starts
    with b"FAIL" (DTM's FAILURE; its compensation or cancel, which carries the same body,
    succeeds); QueryPrepared says "rolled back" for gids starting with "rb-"."""
    if body.startswith(b"FAIL") and metadata.get("dtm-op") in ("action", "try"):
        return "insufficient funds"
    if method == "QueryPrepared" and metadata.get("dtm-gid", "").startswith("rb-"):
        return "local transaction rolled back"
    return None


def code_of(fn):
    """The gRPC status code and details fn() ends with."""
    try:
        fn()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def go_request(gid, trans_type, steps=None, payloads=(), options=None, **fields):
    """A DtmRequest as dtmgimp.GetDtmRequest builds it."""
    return gpb.DtmRequest(Gid=gid, TransType=trans_type,
                          TransOptions=gpb.DtmTransOptions(**(options or {})),
                          Steps=json.dumps(steps), BinPayloads=list(payloads), **fields)


def main():
    busi, server, busi_port = serve_branches(refuse)
    # DTM's gRPC targets: host:port/package.Service/Method, no scheme.
    url = lambda m: "127.0.0.1:%d/busi.Busi/%s" % (busi_port, m)  # noqa: E731
    busi_channel = grpc.insecure_channel("127.0.0.1:%d" % busi_port)

    tmp = tempfile.mkdtemp(prefix="dtm-gimp-")
    dtmd, address = start_dtmd(args.dtmd, tmp, http_listen="")
    channel = grpc.insecure_channel(address)
    dtm = gpb_grpc.DtmStub(channel)
    v1 = pb_grpc.CoordinatorStub(channel)

    def query(gid):
        return v1.Query(pb.QueryRequest(gid=gid), timeout=TIMEOUT).transaction

    def wait_status(gid, status):
        wait_until(lambda: query(gid).status == status)
        return query(gid)

    # NewGid on either face; gids work on both.
    gid = dtm.NewGid(empty_pb2.Empty(), timeout=TIMEOUT).Gid
    check(0 < len(gid) <= 64, "dtmgimp NewGid returns a gid")
    v1_gid = v1.NewGid(pb.NewGidRequest(), timeout=TIMEOUT).gid

    def saga(saga_gid, second_body=b"in", **options):
        return go_request(saga_gid, "saga",
                          steps=[{"action": url("TransOut"), "compensate": url("TransOutRevert")},
                                 {"action": url("TransIn"), "compensate": url("TransInRevert")}],
                          payloads=[b"out", second_body], options=options)

    # Saga: success, without waiting, as the Go SDK's default; dtm.v1 sees it.
    g = "saga-ok-" + v1_gid
    dtm.Submit(saga(g), timeout=TIMEOUT)
    t = wait_status(g, pb.SUCCEEDED)
    check(t.status == pb.SUCCEEDED and t.trans_type == pb.SAGA,
          "a saga submitted over dtmgimp succeeds; dtm.v1 Query sees it")
    check(busi.methods(g) == ["TransOut", "TransIn"], "its actions ran in order")
    calls = busi.of(g)
    check([(c["dtm-op"], c["dtm-branch_id"], c["dtm-trans_type"], c["body"]) for c in calls] ==
          [("action", "01", "saga", b"out"), ("action", "02", "saga", b"in")],
          "branches get dtm-op, dtm-branch_id, dtm-trans_type and their BinPayload")
    listed = v1.List(pb.ListRequest(gid_prefix=g), timeout=TIMEOUT).transactions
    check([x.gid for x in listed] == [g], "dtm.v1 List shows it")

    # Saga rollback, waiting: TransIn refuses, compensations run in reverse, ABORTED.
    g = "saga-fail-" + gid
    code, details = code_of(lambda: dtm.Submit(saga(g, b"FAIL", WaitResult=True),
                                               timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED and "insufficient funds" in details,
          "WaitResult on a failing saga: ABORTED with the rollback reason (%s %s)" %
          (code, details))
    check(busi.methods(g) == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"],
          "compensations ran in reverse")
    check([c["dtm-op"] for c in busi.of(g)] == ["action", "action", "compensate", "compensate"],
          "compensations carry dtm-op compensate")
    check(query(g).status == pb.FAILED, "the saga is FAILED")

    # WaitResult on success: OK once succeeded.
    g = "saga-wait-" + gid
    code, _ = code_of(lambda: dtm.Submit(saga(g, WaitResult=True), timeout=TIMEOUT))
    check(code == grpc.StatusCode.OK and query(g).status == pb.SUCCEEDED,
          "WaitResult on a succeeding saga: OK, SUCCEEDED")
    code, details = code_of(lambda: dtm.Submit(saga(g), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED and "already" in details,
          "Submit of a finished transaction again: ABORTED")

    # TCC as dtmgrpc.TccGlobalTransaction does it.
    def tcc(tcc_gid, bodies):
        dtm.Prepare(go_request(tcc_gid, "tcc"), timeout=TIMEOUT)
        for i, body in enumerate(bodies, 1):
            bid = "%02d" % i
            dtm.RegisterBranch(gpb.DtmBranchRequest(
                Gid=tcc_gid, TransType="tcc", BranchID=bid, BusiPayload=body,
                Data={"confirm": url("Confirm%d" % i), "cancel": url("Cancel%d" % i)}),
                timeout=TIMEOUT)
            try_call = raw_unary(busi_channel, "/busi.Busi/Try%d" % i)
            try:
                try_call(body, timeout=TIMEOUT,
                         metadata=(("dtm-gid", tcc_gid), ("dtm-trans_type", "tcc"),
                                   ("dtm-branch_id", bid), ("dtm-op", "try"),
                                   ("dtm-dtm", address)))
            except grpc.RpcError as e:
                return e.details()
        return None

    g = "tcc-ok-" + gid
    check(tcc(g, [b"a", b"b"]) is None, "tcc: prepare, register and try")
    check(query(g).status == pb.PREPARED and len(query(g).branches) == 4,
          "dtm.v1 sees the prepared tcc and its registered branches")
    dtm.Submit(go_request(g, "tcc"), timeout=TIMEOUT)
    t = wait_status(g, pb.SUCCEEDED)
    check(t.status == pb.SUCCEEDED, "tcc Submit: SUCCEEDED")
    confirms = [c for c in busi.of(g) if c["method"].startswith("Confirm")]
    check([(c["method"], c["dtm-op"], c["dtm-branch_id"], c["body"]) for c in confirms] ==
          [("Confirm2", "confirm", "02", b"b"), ("Confirm1", "confirm", "01", b"a")],
          "confirms ran last first with op confirm and the BusiPayload")
    code, details = code_of(lambda: dtm.RegisterBranch(gpb.DtmBranchRequest(
        Gid=g, TransType="tcc", BranchID="03",
        Data={"confirm": url("Confirm3"), "cancel": url("Cancel3")}), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED,
          "RegisterBranch after Submit: ABORTED (%s %s)" % (code, details))

    g = "tcc-abort-" + gid
    reason = tcc(g, [b"a", b"FAIL"])
    check(reason == "insufficient funds", "tcc: the second try refuses")
    dtm.Abort(go_request(g, "tcc", RollbackReason=reason), timeout=TIMEOUT)
    t = wait_status(g, pb.FAILED)
    check(t.status == pb.FAILED and t.rollback_reason == "insufficient funds",
          "tcc Abort: FAILED with the RollbackReason")
    cancels = [c for c in busi.of(g) if c["method"].startswith("Cancel")]
    check([(c["method"], c["dtm-op"]) for c in cancels] ==
          [("Cancel2", "cancel"), ("Cancel1", "cancel")], "cancels ran last first")

    # XA as dtmgrpc.XaGlobalTransaction does it: Prepare (Steps "null"); each branch's action
    # is called by the client with dtm-phase2_url, and the resource manager registers itself
    # (RegisterBranch{TransType xa, Data url: that phase-2 url, no BusiPayload}) before it
    # prepares its local transaction; then Submit, or Abort without a reason.
    def xa(xa_gid, bodies):
        dtm.Prepare(go_request(xa_gid, "xa"), timeout=TIMEOUT)
        for i, body in enumerate(bodies, 1):
            bid, phase2_url = "%02d" % i, url("Xa%d" % i)
            action = raw_unary(busi_channel, "/busi.Busi/Xa%d" % i)
            try:
                action(body, timeout=TIMEOUT,
                       metadata=(("dtm-gid", xa_gid), ("dtm-trans_type", "xa"),
                                 ("dtm-branch_id", bid), ("dtm-op", "action"),
                                 ("dtm-dtm", address), ("dtm-phase2_url", phase2_url)))
            except grpc.RpcError as e:
                return e.details()
            dtm.RegisterBranch(gpb.DtmBranchRequest(Gid=xa_gid, TransType="xa", BranchID=bid,
                                                    Data={"url": phase2_url}), timeout=TIMEOUT)
        return None

    def phase2(xa_gid):
        return sorted((c["method"], c["dtm-op"], c["dtm-branch_id"], c["dtm-trans_type"],
                       c["body"]) for c in busi.of(xa_gid) if c["dtm-op"] != "action")

    g = "xa-ok-" + gid
    check(xa(g, [b"a", b"b"]) is None, "xa: prepare, actions, registrations")
    t = query(g)
    check(t.status == pb.PREPARED and t.trans_type == pb.XA and len(t.branches) == 4,
          "dtm.v1 sees the prepared xa and its registered branches")
    dtm.Submit(go_request(g, "xa", options={"WaitResult": True}), timeout=TIMEOUT)
    check(query(g).status == pb.SUCCEEDED, "xa Submit with WaitResult: SUCCEEDED")
    check(phase2(g) == [("Xa1", "commit", "01", "xa", b""), ("Xa2", "commit", "02", "xa", b"")],
          "every branch is committed at its phase-2 url, with op commit and an empty body")

    g = "xa-abort-" + gid
    reason = xa(g, [b"a", b"FAIL"])
    check(reason == "insufficient funds", "xa: the second action refuses (and never registers)")
    dtm.Abort(go_request(g, "xa"), timeout=TIMEOUT)
    t = wait_status(g, pb.FAILED)
    check(t.status == pb.FAILED and phase2(g) == [("Xa1", "rollback", "01", "xa", b"")],
          "xa Abort: the registered branch is rolled back, FAILED")
    code, details = code_of(lambda: dtm.RegisterBranch(gpb.DtmBranchRequest(
        Gid=g, TransType="xa", BranchID="02", Data={"url": url("Xa2")}), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED,
          "a late xa registration after Abort: ABORTED, so its resource manager rolls back")

    # A client slower than its TimeoutToFail: dtmd is rolling the xa back (its branch's
    # rollback cannot get through) when the Submit arrives. DTM's SDK must hear a failure,
    # not a commit, waiting or not.
    g = "xa-late-" + gid
    dtm.Prepare(go_request(g, "xa", options={"TimeoutToFail": 1}), timeout=TIMEOUT)
    dtm.RegisterBranch(gpb.DtmBranchRequest(Gid=g, TransType="xa", BranchID="01",
                                            Data={"url": "127.0.0.1:1/busi.Busi/Xa1"}),
                       timeout=TIMEOUT)
    wait_status(g, pb.ABORTING)
    for wait in (False, True):
        code, details = code_of(lambda: dtm.Submit(
            go_request(g, "xa", options={"WaitResult": wait}), timeout=TIMEOUT))
        check(code == grpc.StatusCode.ABORTED and "aborting" in details,
              "Submit of an xa dtmd is rolling back (WaitResult %s): ABORTED, %r" % (wait, details))
    v1.ForceStop(pb.ForceStopRequest(gid=g, reason="test over"), timeout=TIMEOUT)

    # Msg: Prepare then Submit (MsgGrpc.Prepare + Submit, or DoAndSubmit).
    def msg(msg_gid, timeout_to_fail=0):
        return go_request(msg_gid, "msg", steps=[{"action": url("Deliver")}],
                          payloads=[b"event"], QueryPrepared=url("QueryPrepared"),
                          options={"TimeoutToFail": timeout_to_fail})

    g = "msg-ok-" + gid
    dtm.Prepare(msg(g), timeout=TIMEOUT)
    dtm.Submit(msg(g), timeout=TIMEOUT)
    wait_status(g, pb.SUCCEEDED)
    check(busi.methods(g) == ["Deliver"] and busi.of(g)[0]["dtm-op"] == "action" and
          busi.of(g)[0]["body"] == b"event", "msg Prepare + Submit delivers its step")

    # A prepared msg left alone: the coordinator asks QueryPrepared (op msg, branch 00).
    committed, rolled_back = "msg-check-" + gid, "rb-msg-" + gid
    dtm.Prepare(msg(committed, 1), timeout=TIMEOUT)
    dtm.Prepare(msg(rolled_back, 1), timeout=TIMEOUT)
    t = wait_status(committed, pb.SUCCEEDED)
    check(t.status == pb.SUCCEEDED and busi.methods(committed) == ["QueryPrepared", "Deliver"],
          "a prepared msg whose back-check says committed is delivered")
    check_call = busi.of(committed)[0]
    check((check_call["dtm-op"], check_call["dtm-branch_id"], check_call["dtm-trans_type"],
           check_call["body"]) == ("msg", "00", "msg", b""),
          "the back-check carries op msg, branch 00 and an empty body")
    t = wait_status(rolled_back, pb.FAILED)
    check(t.status == pb.FAILED and busi.methods(rolled_back) == ["QueryPrepared"],
          "a prepared msg whose back-check says rolled back fails undelivered")
    g = "msg-abort-" + gid
    dtm.Prepare(msg(g), timeout=TIMEOUT)
    dtm.Abort(msg(g), timeout=TIMEOUT)
    check(query(g).status == pb.FAILED and busi.methods(g) == [], "msg Abort drops it")

    # Bad input: INVALID_ARGUMENT naming DTM's field; nothing stored.
    g = "bad-" + gid
    bad = [
        (go_request(g, "saga", steps=None), "Steps is empty"),
        (gpb.DtmRequest(Gid=g, TransType="saga", Steps="[{"), "Steps is not valid JSON"),
        (go_request(g, "saga", steps=[{"action": url("A")}, {"action": url("B")}],
                    payloads=[b"only one"]), "BinPayloads has 1 entries for 2 steps"),
        (go_request(g, "dance"), "TransType 'dance'"),
        (go_request("", "saga", steps=[{"action": url("A")}], payloads=[b""]), "Gid"),
        (go_request(g, "saga", steps=[{"action": "unix:/x"}], payloads=[b""]),
         "Steps[0].action"),
        (go_request(g, "saga", steps=[{"action": url("A")}], payloads=[b""],
                    options={"TimeoutToFail": -1}), "TransOptions.TimeoutToFail"),
    ]
    for req, field in bad:
        code, details = code_of(lambda: dtm.Submit(req, timeout=TIMEOUT))
        check(code == grpc.StatusCode.INVALID_ARGUMENT and field in details,
              "bad input is INVALID_ARGUMENT naming %s (%s: %s)" % (field, code, details))
    code, _ = code_of(lambda: query(g))
    check(code == grpc.StatusCode.NOT_FOUND, "bad input stored nothing")

    # Refused state changes: ABORTED, as DTM's SDKs read FAILURE.
    code, details = code_of(lambda: dtm.RegisterBranch(gpb.DtmBranchRequest(
        Gid="unknown-" + gid, TransType="tcc", BranchID="01",
        Data={"confirm": url("C"), "cancel": url("X")}), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED, "RegisterBranch on an unknown gid: ABORTED (%s %s)" %
          (code, details))
    code, _ = code_of(lambda: dtm.Abort(go_request("saga-ok-" + v1_gid, "saga"), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED, "Abort of a saga: ABORTED")
    code, _ = code_of(lambda: dtm.Prepare(go_request("tcc-ok-" + gid, "msg",
                                                     steps=[{"action": url("A")}],
                                                     payloads=[b""],
                                                     QueryPrepared=url("Q")), timeout=TIMEOUT))
    check(code == grpc.StatusCode.ABORTED, "Prepare of a known gid as another type: ABORTED")

    # DTM's workflow and topics are not dtmd's.
    for name, call in [
            ("PrepareWorkflow", lambda: dtm.PrepareWorkflow(go_request(g, "workflow"),
                                                            timeout=TIMEOUT)),
            ("Submit of a workflow", lambda: dtm.Submit(go_request(g, "workflow"),
                                                        timeout=TIMEOUT)),
            ("Subscribe", lambda: dtm.Subscribe(gpb.DtmTopicRequest(Topic="t", URL=url("A")),
                                                timeout=TIMEOUT))]:
        code, details = code_of(call)
        check(code == grpc.StatusCode.UNIMPLEMENTED and details,
              "%s: UNIMPLEMENTED with a reason (%s)" % (name, details))

    health = raw_unary(channel, "/grpc.health.v1.Health/Check")
    # HealthCheckRequest{service: "dtmgimp.Dtm"}: field 1, length 11.
    check(health(b"\x0a\x0bdtmgimp.Dtm", timeout=TIMEOUT) == b"\x08\x01",
          "the health service answers SERVING for dtmgimp.Dtm")

    check(stop(dtmd) == 0, "dtmd exits 0 on SIGTERM")

    # With client tokens: the same authentication and ownership as dtm.v1.
    tmp = tempfile.mkdtemp(prefix="dtm-gimp-auth-")
    with open(os.path.join(tmp, "tokens"), "w") as f:
        f.write("alice-token-0123456789 alice submit\nbob-token-0123456789ab bob submit\n")
    dtmd, address = start_dtmd(args.dtmd, tmp, "--auth_tokens_file=" + os.path.join(tmp, "tokens"),
                               http_listen="")
    dtm = gpb_grpc.DtmStub(grpc.insecure_channel(address))
    alice = (("authorization", "Bearer alice-token-0123456789"),)
    bob = (("authorization", "Bearer bob-token-0123456789ab"),)
    code, _ = code_of(lambda: dtm.NewGid(empty_pb2.Empty(), timeout=TIMEOUT))
    check(code == grpc.StatusCode.UNAUTHENTICATED, "without a token: UNAUTHENTICATED")
    g = "auth-" + gid
    code, _ = code_of(lambda: dtm.Prepare(go_request(g, "tcc"), timeout=TIMEOUT, metadata=alice))
    check(code == grpc.StatusCode.OK, "with a token: Prepare")
    code, _ = code_of(lambda: dtm.Abort(go_request(g, "tcc"), timeout=TIMEOUT, metadata=bob))
    check(code == grpc.StatusCode.PERMISSION_DENIED,
          "another client's Abort: PERMISSION_DENIED (%s)" % code)
    code, _ = code_of(lambda: dtm.Abort(go_request(g, "tcc"), timeout=TIMEOUT, metadata=alice))
    check(code == grpc.StatusCode.OK, "the owner's Abort")
    check(stop(dtmd) == 0, "dtmd exits 0 on SIGTERM")

    server.stop(0)


if __name__ == "__main__":
    run(main)
