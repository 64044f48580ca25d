"""What the infrastructure-fault tests share: dtm-faultload run as a child process, its
progress and its verdict.

dtm-faultload prints a progress line per second ("faultload: progress t=... submitted=...
ok=... aborted=... unavailable=... other=..."), "faultload: VIOLATION ..." lines, and one
"faultload: RESULT {json}" line at the end; its exit status is 0 when the bank invariant held.
"""
import json
import re
import subprocess
import threading
import time

PROGRESS = re.compile(r"progress t=\S+ submitted=(\d+) ok=(\d+) aborted=(\d+) "
                      r"unavailable=(\d+) other=(\d+)")


class Faultload:
    """dtm-faultload started with `argv` (its path and flags, possibly behind an
    `ip netns exec ...` prefix), its output copied to the file `log`. progress holds
    (time, submitted, ok, aborted, unavailable, other) tuples; result the RESULT line's dict."""

    def __init__(self, argv, log, procs=None):
        self.progress = []
        self.result = None
        self.violations = []
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        if procs is not None:
            procs.append(self.proc)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            m = PROGRESS.search(line)
            if m:
                self.progress.append((time.time(),) + tuple(int(g) for g in m.groups()))
            elif line.startswith("faultload: RESULT "):
                self.result = json.loads(line[len("faultload: RESULT "):])
            elif line.startswith("faultload: VIOLATION"):
                self.violations.append(line.strip())

    def at(self, t):
        """The last progress tuple printed by time t (zeros before the first)."""
        before = [p for p in self.progress if p[0] <= t]
        return before[-1] if before else (t, 0, 0, 0, 0, 0)

    def submitted_between(self, t1, t2):
        """How many transfers it started between t1 and t2, by its progress lines."""
        return self.at(t2)[1] - self.at(t1)[1]

    def ok_at(self, t):
        """The count of acknowledged client calls by time t."""
        return self.at(t)[2]

    def wait(self, timeout):
        """Waits for the exit (killing it after `timeout` seconds); returns the exit status."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(timeout=10)
        self.log.flush()
        return code
