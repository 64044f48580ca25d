"""dtm-bench still runs: each mode for a moment, with few clients, checked for its figures.

The benchmark is not timed here (a test on a shared machine cannot judge speed); what this
catches is a bench that no longer starts dtmd, errors on every transaction or prints no
figure, which nobody would notice until the next time someone measured. Each mode must exit
0, report no errors, and print its figure lines with a rate above zero.

Usage (ctest passes these): bench_smoke_test.py --bench build/bin/dtm-bench
With DTM_TEST_PG set (the test run's PostgreSQL), the PostgreSQL saga and pgloop run too, with
the server's CPU per saga for each (the server is on this machine).
"""
import argparse
import os
import re
import subprocess
import sys

failures = []


def run(bench, name, args, expect):
    """Runs dtm-bench with `args`; each regular expression of `expect` must match a line."""
    cmd = [bench, "--seconds=1", "--clients=2"] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        failures.append("%s: no answer within 240 s: %s" % (name, " ".join(cmd)))
        print("FAIL %s (timeout)" % name)
        return
    out = p.stdout + p.stderr
    problems = []
    if p.returncode != 0:
        problems.append("exit status %d" % p.returncode)
    for m in re.finditer(r"errors (\d+)", out):
        if int(m.group(1)) != 0:
            problems.append("a figure line reports %s errors" % m.group(1))
    for pattern in expect:
        m = re.search(pattern, out, re.MULTILINE)
        if m is None:
            problems.append("no line matching %r" % pattern)
        elif m.groups() and float(m.group(1).replace(",", "")) <= 0:
            problems.append("%r: rate %s" % (pattern, m.group(1)))
    if problems:
        failures.append("%s: %s\n%s" % (name, "; ".join(problems), out))
        print("FAIL %s: %s" % (name, "; ".join(problems)))
    else:
        print("ok   %s" % name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", required=True)
    bench = parser.parse_args().bench
    rate = r"sagas/s\s+([\d.]+)"
    trans = r"trans/s\s+([\d.]+)"
    run(bench, "saga", [], [r"^coordinator\s+" + rate, r"^baseline\s+" + rate,
                            r"^ratio\s+coordinator/baseline throughput ([\d.]+)",
                            r"^cpu\s+dtmd ([\d.]+) us per saga \(\d+ of them; by thread: "
                            r".*dtm-store-write"])
    run(bench, "tcc", ["--type=tcc"], [r"^coordinator\s+" + trans, r"^baseline\s+" + trans])
    run(bench, "msg", ["--type=msg"], [r"^coordinator\s+" + trans, r"^baseline\s+" + trans])
    run(bench, "open loop", ["--rate=half"],
        [r"^coordinator\s+" + rate + r"\s+offered", r"^baseline\s+" + rate + r"\s+offered"])
    run(bench, "store", ["--mode=store"], [r"^store\s+" + rate])
    run(bench, "pending", ["--mode=pending", "--pending=300"],
        [r"^memory\s+idle [\d.]+ MiB, with 300 waiting"])
    run(bench, "recovery", ["--mode=recovery", "--pending=300"],
        # From the first resumed call there is no rate ("-") when all 300 came within 10 ms,
        # which a fast machine manages; from the restart there always is.
        [r"^resumed\s+300 of 300",
         r"^resume rate\s+(?:\d+|-) trans/s from the first resumed call, ([\d.]+) trans/s "
         r"from the restart"])
    pg = os.environ.get("DTM_TEST_PG", "")
    if pg:
        run(bench, "postgres saga and pgloop", ["--store=" + pg],
            [r"^coordinator\s+" + rate, r"^pgloop\s+" + rate,
             r"^ratio\s+coordinator/pgloop throughput ([\d.]+)",
             # The test run's server is on this machine: its CPU per saga for both modes.
             r"^dbcpu\s+postgres ([\d.]+) us per saga of coordinator",
             r"^dbcpu\s+postgres ([\d.]+) us per saga of pgloop",
             r"^ratio\s+pgloop/coordinator database CPU per saga ([\d.]+)"])
    if failures:
        print("\n\n".join(failures))
        sys.exit(1)
    print("all dtm-bench modes ran")


if __name__ == "__main__":
    main()
