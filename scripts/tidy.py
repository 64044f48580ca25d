#!/usr/bin/python3
"""clang-tidy over the project's sources, with a cache of the files found clean.

  scripts/tidy.py BUILD_DIR [FILE.cc ...]

Runs clang-tidy (the repository's .clang-tidy, findings are errors) on every tracked .cc, or
on the FILEs given, with BUILD_DIR's compile_commands.json (a clang build: scripts/test.sh
uses build-asan/). Findings in the project's own headers are reported too, including through
the links in BUILD_DIR/include/<target>/ the build compiles them from; generated code and
system headers are not.

clang-tidy takes tens of seconds per file, so a file found clean is remembered: the key is a
hash of its preprocessed translation unit (comments kept, so a NOLINT counts), its compile
flags, .clang-tidy, the clang-tidy version and the options below, with the checkout's and
the build's paths taken out, so that another clone on the same machine (CI) hits the cache
this one filled. A file with findings is always checked again.

Environment: DTM_CACHE_DIR (/var/cache/dtm-cpp; the cache is its clang-tidy/), DTM_JOBS
(files checked at once, 2), CLANG_TIDY (clang-tidy).
Exit status: 0 when every file is clean, 1 on findings, 2 on a usage or setup error.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
KEY_VERSION = "dtm-tidy-1"  # bump when the way files are checked changes
PRINT_LOCK = threading.Lock()


def fail(msg):
    print(f"tidy: {msg}", file=sys.stderr)
    sys.exit(2)


def compile_args(entry):
    if "arguments" in entry:
        return list(entry["arguments"])
    return shlex.split(entry["command"])


def preprocess_args(args, source):
    """The compile command turned into `-E -C` to stdout: no object, no depfile."""
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD"):
            continue
        out.append(a)
    if source not in out:
        out.append(source)
    return out + ["-E", "-C", "-o", "-"]


class Checker:
    def __init__(self, build, tidy, cache):
        self.build = build
        self.tidy = tidy
        self.cache = cache
        self.header_filter = "^({}/(client|server|storage|tests)/|{}/include/)".format(
            re.escape(ROOT), re.escape(build))
        with open(os.path.join(ROOT, ".clang-tidy"), "rb") as f:
            config = f.read()
        version = subprocess.run([tidy, "--version"], capture_output=True, check=True).stdout
        # Everything but the file itself that decides what clang-tidy says about it.
        self.base_key = hashlib.sha256(b"\0".join(
            [KEY_VERSION.encode(), version, config,
             self.normalize(self.header_filter.encode())])).hexdigest()

    def normalize(self, data):
        # The build is usually inside the checkout: take it out first.
        data = data.replace(self.build.encode(), b"@BUILD@")
        data = data.replace(re.escape(self.build).encode(), b"@BUILD_RE@")
        data = data.replace(ROOT.encode(), b"@ROOT@")
        return data.replace(re.escape(ROOT).encode(), b"@ROOT_RE@")

    def key(self, entry, source):
        args = compile_args(entry)
        pp = subprocess.run(preprocess_args(args, source), cwd=entry["directory"],
                            capture_output=True)
        if pp.returncode != 0:
            return None  # clang-tidy will say why
        h = hashlib.sha256(self.base_key.encode())
        h.update(self.normalize(shlex.join(args).encode()))
        h.update(b"\0")
        h.update(self.normalize(pp.stdout))
        return h.hexdigest()

    def check(self, rel, entry):
        """Returns (status, seconds, output); status: cached, clean or findings."""
        start = time.monotonic()
        source = os.path.join(ROOT, rel)
        key = self.key(entry, source)
        marker = os.path.join(self.cache, key[:2], key) if key else None
        if marker and os.path.exists(marker):
            return "cached", time.monotonic() - start, ""
        r = subprocess.run(
            [self.tidy, "-p", self.build, "--quiet", "--warnings-as-errors=*",
             f"--header-filter={self.header_filter}", source],
            cwd=ROOT, capture_output=True, text=True)
        output = (r.stdout + r.stderr).strip()
        # "N warnings generated." counts what the filters hid: not a finding.
        output = "\n".join(l for l in output.splitlines()
                           if not re.fullmatch(r"\d+ (warning|error)s? generated\.", l))
        if r.returncode == 0 and marker:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            tmp = f"{marker}.{os.getpid()}.{threading.get_ident()}"
            with open(tmp, "w") as f:
                f.write(rel + "\n")
            os.replace(tmp, marker)
        return ("clean" if r.returncode == 0 else "findings"), time.monotonic() - start, output


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    build = os.path.realpath(sys.argv[1])
    db_path = os.path.join(build, "compile_commands.json")
    if not os.path.exists(db_path):
        fail(f"{db_path} not found: configure a clang build there first")
    with open(db_path) as f:
        db = {os.path.realpath(os.path.join(e["directory"], e["file"])): e for e in json.load(f)}
    files = sys.argv[2:]
    if not files:
        files = subprocess.run(["git", "ls-files", "*.cc"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split()
    files = [os.path.relpath(os.path.realpath(f), ROOT) for f in files]
    missing = [f for f in files if os.path.join(ROOT, f) not in db]
    if missing:
        fail(f"not in {db_path} (a target that build does not configure?): {' '.join(missing)}")

    tidy = os.environ.get("CLANG_TIDY", "clang-tidy")
    cache = os.path.join(os.environ.get("DTM_CACHE_DIR", "/var/cache/dtm-cpp"), "clang-tidy")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:  # e.g. not root: a per-user cache instead
        cache = os.path.join(os.path.expanduser("~/.cache/dtm-cpp"), "clang-tidy")
        os.makedirs(cache, exist_ok=True)
    jobs = int(os.environ.get("DTM_JOBS", "2"))
    checker = Checker(build, tidy, cache)
    print(f"tidy: {len(files)} files, {jobs} at a time, {tidy} with {ROOT}/.clang-tidy; "
          f"clean files cached in {cache}", flush=True)

    counts = {"cached": 0, "clean": 0, "findings": 0}
    bad = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(checker.check, f, db[os.path.join(ROOT, f)]): f for f in files}
        for fut in concurrent.futures.as_completed(futures):
            f = futures[fut]
            status, seconds, output = fut.result()
            counts[status] += 1
            with PRINT_LOCK:
                if status == "cached":
                    print(f"  {f}: clean (cached)", flush=True)
                else:
                    print(f"  {f}: {status} ({seconds:.0f}s)", flush=True)
                if status == "findings":
                    bad.append(f)
                    print(output, flush=True)
    print(f"tidy: {counts['clean'] + counts['cached']} of {len(files)} files clean "
          f"({counts['cached']} from the cache), {counts['findings']} with findings"
          + (": " + " ".join(sorted(bad)) if bad else ""), flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
