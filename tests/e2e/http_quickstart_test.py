#!/usr/bin/python3
"""The README's HTTP quick start, run as written: dtmd, bank A (Python http.server,
client/examples/http/busi_a.py) and bank B (Node.js http, busi_b.js), sagas submitted as
DTM's JSON to DTM's HTTP API with nothing but an HTTP client: one succeeds, one fails at
bank B and is compensated in reverse, one is cut by kill -9 of dtmd and finishes after a
restart. Usage: see tests/e2e/CMakeLists.txt.
"""
import json
import os
import signal
import tempfile
import urllib.request

from e2e_support import check, dtmd_argv, parse_args, post_json, procs, run, start, wait_until

args = parse_args("dtmd", "busi_a", "busi_b")
HTTP_PORT = r"on HTTP port (\d+)"  # dtmd's line once its HTTP API listens


def read(tmp, name):
    with open(os.path.join(tmp, name + ".log")) as f:
        return f.read()


def post(url, body):
    """POSTs JSON; returns (status, parsed answer)."""
    return post_json(url, body)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def main():
    tmp = tempfile.mkdtemp(prefix="dtm-http-qs-")
    flags = ("--lease=2s", "--recovery_interval=200ms")
    dtmd, http_port = start(dtmd_argv(args.dtmd, tmp, *flags), "dtmd", tmp, HTTP_PORT)
    _, port_a = start(["/usr/bin/python3", args.busi_a, "--port", "0"], "bank_a", tmp,
                      r"listening on port (\d+)")
    _, port_b = start(["node", args.busi_b, "--port", "0"], "bank_b", tmp,
                      r"listening on port (\d+)")
    api = "http://127.0.0.1:%s/api/dtmsvr/" % http_port

    def saga(gid, transin_payload, **options):
        body = {"gid": gid, "trans_type": "saga",
                "steps": [{"action": "http://localhost:%s/api/TransOut" % port_a,
                           "compensate": "http://localhost:%s/api/TransOutCompensate" % port_a},
                          {"action": "http://localhost:%s/api/TransIn" % port_b,
                           "compensate": "http://localhost:%s/api/TransInCompensate" % port_b}],
                "payloads": ['{"amount": 30}', json.dumps(transin_payload)]}
        body.update(options)
        return post(api + "submit", body)

    gid = get(api + "newGid")["gid"]
    check(len(gid) > 0, "newGid gives a gid")
    status, answer = saga(gid, {"amount": 30}, wait_result=True)
    check(status == 200 and answer == {"dtm_result": "SUCCESS"}, "a saga succeeds: %s" % answer)
    check("TransOut " in read(tmp, "bank_a") and "gid=%s" % gid in read(tmp, "bank_b"),
          "both banks were called")

    status, answer = saga("qs-refused", {"amount": 30, "result": "FAILURE"}, wait_result=True)
    check(status == 409 and answer["dtm_result"] == "FAILURE", "bank B refuses: 409 FAILURE")
    q = get(api + "query?gid=qs-refused")
    check(q["transaction"]["status"] == "failed", "the saga failed")
    finish = {(b["branch_id"], b["op"]): b.get("finish_time", "") for b in q["branches"]}
    check(finish[("02", "compensate")] < finish[("01", "compensate")],
          "compensations ran in reverse: TransInCompensate, then TransOutCompensate")

    status, _ = saga("qs-killed", {"amount": 30, "sleep_first_call": 5}, request_timeout=30)
    check(status == 200, "a slow saga is accepted")
    check(wait_until(lambda: "gid=qs-killed" in read(tmp, "bank_b")), "bank B got TransIn")
    dtmd.send_signal(signal.SIGKILL)
    dtmd.wait()
    check(True, "dtmd killed with -9 while TransIn is in flight")
    start(dtmd_argv(args.dtmd, tmp, *flags, http_listen="127.0.0.1:" + http_port),
          "dtmd-restarted", tmp, HTTP_PORT)
    check(wait_until(
        lambda: get(api + "query?gid=qs-killed")["transaction"]["status"] == "succeed"),
        "after the restart the saga finishes")
    check(read(tmp, "bank_b").count("gid=qs-killed") == 2, "TransIn was called again")

    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    run(main)
