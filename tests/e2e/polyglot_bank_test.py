#!/usr/bin/python3
"""The bank example in three languages against a real dtmd and a real PostgreSQL: bank A is
the C++ bank-server, bank B the Python bank service (stubs from protoc + grpc_python_plugin,
Debian's python3-grpcio, psycopg2); money moves with the Node.js saga client (@grpc/grpc-js)
and the C++ bank-client (tcc, msg). Also checks the Python barrier against duplicates, null
compensation and hanging calls, and both directions (Python debited, C++ credited).

Needs DTM_TEST_PG (ctest sets it). Usage: see tests/e2e/CMakeLists.txt.
"""
import json
import os
import subprocess
import tempfile

import grpc
import psycopg2

from e2e_support import LOOPBACK, check, parse_args, run, start, start_dtmd

args = parse_args("dtmd", "bank_server", "bank_client", "python_bank", "gen", "node_client",
                  "node_modules")
from bank.v1 import bank_pb2 as pb  # noqa: E402
from bank.v1 import bank_pb2_grpc as pb_grpc  # noqa: E402


def start_bank(argv, name, tmp):
    """Starts a bank server (it says "on port N" once it listens); returns 127.0.0.1:N."""
    return LOOPBACK + start(argv, name, tmp)[1]


def balances(*banks):
    out = {}
    for bank in banks:
        stub = pb_grpc.BankStub(grpc.insecure_channel(bank))
        for a in stub.Balances(pb.BalancesRequest(), timeout=10).accounts:
            out[a.user_id] = (a.balance, a.frozen)
    return out


def main():
    base = os.environ.get("DTM_TEST_PG")
    if not base:
        print("needs DTM_TEST_PG")
        return 1
    dbname = "bank_polyglot_%d" % os.getpid()
    admin = psycopg2.connect(base)
    admin.autocommit = True
    admin.cursor().execute("DROP DATABASE IF EXISTS %s" % dbname)
    admin.cursor().execute("CREATE DATABASE %s" % dbname)
    db = "%s dbname=%s" % (base, dbname)
    tmp = tempfile.mkdtemp(prefix="dtm-polyglot-")

    _, dtm = start_dtmd(args.dtmd, tmp, "--timeout_to_fail=2s")
    bank_a = start_bank([args.bank_server, "--port=0", "--db=" + db, "--schema=bank_a",
                         "--accounts=alice:10000"], "bank_a", tmp)
    bank_b = start_bank(["/usr/bin/python3", args.python_bank, "--gen", args.gen, "--port", "0",
                         "--db", db, "--schema", "bank_b", "--accounts", "bob:10000"],
                        "bank_b", tmp)
    check(balances(bank_a, bank_b) == {"alice": (10000, 0), "bob": (10000, 0)},
          "both banks opened their accounts")

    def node(frm, to, amount, a=bank_a, b=bank_b):
        env = dict(os.environ, NODE_PATH=args.node_modules)
        r = subprocess.run(["node", args.node_client, "--dtm", dtm, "--bank_a", a, "--bank_b", b,
                            "--from", frm, "--to", to, "--amount", str(amount)],
                           capture_output=True, text=True, env=env, timeout=120)
        print("node:", r.stdout.strip(), r.stderr.strip())
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    r = node("alice", "bob", 3000)
    check(r.get("status") == "SUCCEEDED", "Node saga: C++ TransOut, Python TransIn succeed")
    check(balances(bank_a, bank_b) == {"alice": (7000, 0), "bob": (13000, 0)},
          "Node saga moved 3000 from alice to bob")

    r = node("alice", "bob", 999999)
    check(r.get("status") == "FAILED" and "short of amount" in r.get("reason", ""),
          "Node saga refused by bank A fails with the bank's reason")
    check(balances(bank_a, bank_b) == {"alice": (7000, 0), "bob": (13000, 0)},
          "a failed saga changes nothing")

    r = node("alice", "nobody", 500)
    check(r.get("status") == "FAILED" and "no account" in r.get("reason", ""),
          "Python TransIn refusing (no account) rolls the saga back")
    check(balances(bank_a, bank_b) == {"alice": (7000, 0), "bob": (13000, 0)},
          "alice got her 500 back from TransOutCompensate")

    r = node("bob", "alice", 1000, a=bank_b, b=bank_a)
    check(r.get("status") == "SUCCEEDED", "Node saga the other way: Python TransOut, C++ TransIn")
    r = node("bob", "alice", 999999, a=bank_b, b=bank_a)
    check(r.get("status") == "FAILED", "Python TransOut refuses an overdraft")
    check(balances(bank_a, bank_b) == {"alice": (8000, 0), "bob": (12000, 0)},
          "balances after both directions")

    def cpp(mode, amount):
        r = subprocess.run([args.bank_client, "--dtm=" + dtm, "--bank_a=" + bank_a,
                            "--bank_b=" + bank_b, "--mode=" + mode, "--amount=%d" % amount,
                            "--db_a=" + db, "--schema_a=bank_a"],
                           capture_output=True, text=True, timeout=120)
        print(r.stdout, r.stderr)
        return r.returncode

    check(cpp("tcc", 500) == 0, "C++ TCC client: Python TransInTry/Confirm")
    check(cpp("msg", 250) == 0, "C++ msg client: message delivered to Python TransIn")
    check(cpp("tcc", 999999) == 2, "TCC refused by bank A ends FAILED")
    check(balances(bank_a, bank_b) == {"alice": (7250, 0), "bob": (12750, 0)},
          "TCC and msg moved 750, nothing left frozen")

    # The Python barrier, called directly with dtm-* metadata as dtmd would.
    stub = pb_grpc.BankStub(grpc.insecure_channel(bank_b))

    def leg(method, gid, op, amount=100, branch="01", user="bob"):
        md = (("dtm-gid", gid), ("dtm-trans_type", "saga"), ("dtm-branch_id", branch),
              ("dtm-op", op))
        try:
            getattr(stub, method)(pb.TransferRequest(user_id=user, amount=amount), metadata=md,
                                  timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    g = "py-barrier-%d" % os.getpid()
    check(leg("TransIn", g + "-dup", "action") == grpc.StatusCode.OK and
          leg("TransIn", g + "-dup", "action") == grpc.StatusCode.OK,
          "a duplicate TransIn answers OK")
    check(balances(bank_b)["bob"] == (12850, 0), "... and credits once")
    check(leg("TransInCompensate", g + "-null", "compensate") == grpc.StatusCode.OK,
          "a compensation whose action never ran answers OK")
    check(leg("TransIn", g + "-null", "action") == grpc.StatusCode.OK,
          "the late action after it answers OK")
    check(balances(bank_b)["bob"] == (12850, 0), "... and both did nothing")
    check(leg("TransIn", "", "action") == grpc.StatusCode.INVALID_ARGUMENT,
          "a call without dtm-gid is INVALID_ARGUMENT")
    check(leg("TransIn", g, "action", amount=0) == grpc.StatusCode.INVALID_ARGUMENT,
          "amount 0 is INVALID_ARGUMENT")
    conn = psycopg2.connect(db)
    cur = conn.cursor()
    cur.execute("SELECT op, reason FROM dtm_barrier.barrier WHERE gid = %s ORDER BY op",
                (g + "-null",))
    check(cur.fetchall() == [("action", "compensate"), ("compensate", "compensate")],
          "the Python barrier wrote DTM's rows to dtm_barrier.barrier")
    cur.execute("SELECT count(DISTINCT trans_type) FROM dtm_barrier.barrier "
                "WHERE branch_id = '00' AND op = 'msg'")
    check(cur.fetchone()[0] == 1, "the C++ msg barrier shares the table")
    conn.close()


if __name__ == "__main__":
    run(main)
