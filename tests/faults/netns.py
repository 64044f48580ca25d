"""Network namespaces joined by a bridge, and named network faults applied to them, for tests
that run real processes (dtmd replicas, PostgreSQL, branch services) under real packet loss,
delay, partitions and duplication.

    topo = Topology(["db", "d1", "d2", "bank"])
    topo.up()
    try:
        pg_tcp, pg_unix = topo.start_postgres("db", "/tmp/x/pg")
        proc = topo.popen("d1", [dtmd, "--listen=%s:36790" % topo.addr("d1"), ...], "/tmp/x/d1.log")
        topo.loss(10)                        # 10 % of the packets between any two nodes
        topo.clear("loss")
        topo.partition(["d1"], ["db"], name="cut")
        topo.apply("delay:200:150:d1,d2")    # the same, from a string (a soak driver's flag)
        topo.clear_all()
    finally:
        topo.down()

Layout. Each node is a namespace of its own with one interface, eth0, and an address in a
private /24; eth0 is one end of a veth pair whose other end is a port of a bridge, br0, which
lives in a further namespace (the "switch"). Nothing is created in, or changed in, the
namespace this process started in: its interfaces, routes and firewall stay as they were, and
the subnet never meets the machine's own (the namespaces have no route out).

Faults, and why each is made the way it is (the kernel these tests were written on has no netem
qdisc, no nft_queue module and no br_netfilter):
- loss and partition are nftables rules in the switch namespace (bridge family, forward hook):
  a packet is dropped on its way between two nodes, as a faulty or cut link drops it, and
  neither endpoint's stack learns of it (dropped in the sender's own output hook, a packet's
  loss is a local error to the sender: a UDP send fails at once with EPERM, TCP sees a
  transmit that failed, not a packet lost on the way). Loss is `numgen random mod 100 < N`.
  ARP is left alone: a partition here cuts IPv4 between the two groups, as a firewall or
  routing fault would, while the nodes keep their neighbours.
- duplication is `dup to ip daddr device "eth0"` in the sending node's output hook (ip
  family): the kernel sends a copy of a random N % of the packets; the bridge family has no
  dup statement.
- delay with jitter is netdelay (netdelay.c), one per sending node, fed by
  `iptables -j NFQUEUE` in that node's output hook: nft's own `queue` statement needs a module
  these kernels lack, while iptables-nft reaches the same queue through the xt_NFQUEUE target.
  Each packet is held for delay +- jitter (uniform), so packets also leave out of order: jitter
  is also how reordering is made. The bridge hook cannot queue packets (that needs
  br_netfilter), which is why delay is applied at the sender and not in the switch.
Every fault is its own nftables table (or iptables rule and netdelay process), named after the
fault, so clearing one removes exactly what it added; each rule counts the packets it acted on,
which stats() reports.

Processes started with popen() (and PostgreSQL) are stopped by down(), which then kills by pid
whatever still runs in the namespaces (children those processes left) and deletes the
namespaces, which removes their interfaces and rules with them. up() first deletes namespaces a
killed earlier run left behind (their name carries the pid of the process that made them).
Everything needs root.
"""
import atexit
import ctypes
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
PREFIX = "dtmf"  # namespace names: dtmf<pid>-<node>
_libc = ctypes.CDLL(None, use_errno=True)


def _sh(argv, check=True, timeout=60):
    """Runs argv; returns its stdout. Raises RuntimeError with its output if it fails and
    `check`."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), p.returncode, p.stdout,
                                                     p.stderr))
    return p.stdout


def _setns(path):
    """Moves the calling thread into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def missing_tools(netdelay=None):
    """What this module needs and cannot find: a list of messages (empty when all is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, nftables)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("iptables", "iptables")):
        if not shutil.which(tool):
            missing.append("%s (Debian package %s)" % (tool, package))
    if netdelay is not None and not os.access(netdelay, os.X_OK):
        missing.append("netdelay at %s (built from tests/faults/netdelay.c)" % netdelay)
    return missing


class Fault:
    """One named fault: what it added (nftables tables, iptables rules, netdelay processes), so
    that clearing it removes exactly that, and a description."""

    def __init__(self, name, kind, description):
        self.name = name
        self.kind = kind
        self.description = description
        self.tables = []    # (namespace, family, table)
        self.iptables = []  # (namespace, [rule args after -A/-D])
        self.delayers = []  # (namespace, Popen, log path)
        self.applied_at = time.time()
        self.cleared_at = None
        self.final_stats = None


class Topology:
    """Nodes in network namespaces of their own on one bridge; see the module's docstring."""

    def __init__(self, nodes, subnet=None, tag=None, netdelay=None, seed=None):
        """`nodes`: node names (letters and digits, at most 8 characters). `subnet`: the first
        three octets of the /24 ("10.77.3"); by default one picked at random in 10/8.
        `netdelay`: the netdelay binary (needed for delay faults)."""
        for n in nodes:
            if not re.fullmatch(r"[a-z0-9]{1,8}", n) or n == "switch":
                raise ValueError("node name %r: use 1-8 lowercase letters or digits, not "
                                 "'switch'" % n)
        self.nodes = list(nodes)
        rnd = random.Random(seed)
        self.subnet = subnet or "10.%d.%d" % (rnd.randint(64, 250), rnd.randint(1, 250))
        self.tag = tag or "%s%d" % (PREFIX, os.getpid())
        self.netdelay = netdelay
        self.seed = seed if seed is not None else rnd.randint(1, 1 << 30)
        self._addr = {n: "%s.%d" % (self.subnet, 10 + i) for i, n in enumerate(self.nodes)}
        self.faults = {}
        self.procs = []       # (node, Popen) started by popen()
        self.postgres = []    # (node, data dir)
        self._pg_start = {}   # data dir -> the command that starts its server
        self.is_up = False
        self._queue = 0

    # --- names and addresses -------------------------------------------------------------

    def ns(self, node):
        """The namespace of `node` ("switch": the bridge's)."""
        return "%s-%s" % (self.tag, node)

    def addr(self, node):
        return self._addr[node]

    def addrs(self, nodes):
        return [self._addr[n] for n in nodes]

    def node_of(self, address):
        """The node that has `address` (an IP, or a gRPC peer string such as
        "ipv4:10.1.2.11:45678"), or None."""
        m = re.search(r"(\d+\.\d+\.\d+\.\d+)", address or "")
        for n, a in self._addr.items():
            if m and m.group(1) == a:
                return n
        return None

    # --- running things in a namespace ---------------------------------------------------

    def exec_argv(self, node, argv):
        """argv run inside `node`'s namespace (ip netns exec execs it: the pid is argv's)."""
        return ["ip", "netns", "exec", self.ns(node)] + list(argv)

    def run(self, node, argv, check=True, timeout=60):
        return _sh(self.exec_argv(node, argv), check=check, timeout=timeout)

    def popen(self, node, argv, log=None, **kwargs):
        """Starts argv in `node`'s namespace, output appended to the file `log` (else inherited);
        down() stops it."""
        out = None
        if log is not None:
            out = open(log, "a")
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", subprocess.STDOUT)
        try:
            p = subprocess.Popen(self.exec_argv(node, argv), **kwargs)
        finally:
            if out is not None:
                out.close()  # the child has its own
        self.procs.append((node, p))
        return p

    def enter(self, node):
        """Moves this whole process into `node`'s namespace: every socket it opens afterwards,
        from any thread it starts afterwards (gRPC's own among them), is there. Only while the
        process has a single thread (threads started before would stay behind)."""
        tasks = os.listdir("/proc/self/task")
        if len(tasks) != 1:
            raise RuntimeError("enter(%s): this process already has %d threads" %
                               (node, len(tasks)))
        _setns("/run/netns/" + self.ns(node))

    def call_in(self, node, fn, *args):
        """Runs fn(*args) on a new thread inside `node`'s namespace and returns its result (or
        raises its exception): for a short synchronous exchange, such as reading a server's
        metrics over its loopback address, that no network fault can touch."""
        box = {}

        def body():
            try:
                _setns("/run/netns/" + self.ns(node))
                box["result"] = fn(*args)
            except BaseException as e:  # handed to the caller
                box["error"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def http_get(self, node, url, timeout=10):
        """GETs `url` from inside `node`'s namespace; returns the body as text."""
        import urllib.request

        def get():
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode()

        return self.call_in(node, get)

    # --- up and down ---------------------------------------------------------------------

    @staticmethod
    def remove_stale():
        """Deletes namespaces named by this module whose creating process is gone (a run that
        was killed before it could clean up), killing by pid what still runs in them."""
        for line in _sh(["ip", "netns", "list"], check=False).splitlines():
            name = line.split()[0] if line.split() else ""
            m = re.fullmatch(r"%s(\d+)-[a-z0-9]+" % PREFIX, name)
            if m and not _pid_alive(int(m.group(1))):
                _kill_namespace_pids(name)
                _sh(["ip", "netns", "del", name], check=False)

    def up(self):
        """Creates the switch and the nodes; returns self. Registers down() to run at exit."""
        self.remove_stale()
        atexit.register(self.down)
        self.is_up = True
        sw = self.ns("switch")
        _sh(["ip", "netns", "add", sw])
        _sh(["ip", "-n", sw, "link", "set", "lo", "up"])
        _sh(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"])
        _sh(["ip", "-n", sw, "link", "set", "br0", "up"])
        for node in self.nodes:
            ns = self.ns(node)
            _sh(["ip", "netns", "add", ns])
            port = "p-" + node
            _sh(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", ns])
            _sh(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])
            _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            _sh(["ip", "-n", ns, "addr", "add", self.addr(node) + "/24", "dev", "eth0"])
            _sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        return self

    def down(self):
        """Clears the faults, stops what popen() and start_postgres() started, kills by pid
        whatever else still runs in the namespaces, and deletes them. Safe to call twice."""
        if not self.is_up:
            return
        self.is_up = False
        for name in list(self.faults):
            try:
                self.clear(name)
            except Exception as e:  # the namespaces go anyway
                print("netns: clearing %s: %s" % (name, e), flush=True)
        for node, data in self.postgres:
            _sh(self.exec_argv(node, _as_postgres(_pg_bin("pg_ctl"), "-D", data, "-m",
                                                  "immediate", "-w", "stop")), check=False)
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for node in self.nodes + ["switch"]:
            _kill_namespace_pids(self.ns(node))
            _sh(["ip", "netns", "del", self.ns(node)], check=False)

    # --- PostgreSQL ----------------------------------------------------------------------

    def start_postgres(self, node, directory, port=5432, settings=()):
        """initdb and start a PostgreSQL server in `node`'s namespace, listening on TCP on the
        node's address (what the network faults act on) and on a unix socket in `directory`
        (which no network fault touches: any namespace can use it). fsync and synchronous
        commit on, max_prepared_transactions = 100 (XA branches need it), trust authentication
        from the subnet. Runs as the postgres user. Returns (TCP conninfo, unix conninfo)."""
        os.makedirs(directory, exist_ok=True)
        shutil.chown(directory, "postgres", "postgres")
        os.chmod(directory, 0o700)
        data = os.path.join(directory, "data")
        _sh(_as_postgres(_pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                         "-E", "UTF8", "--no-sync"))
        with open(os.path.join(data, "pg_hba.conf"), "a") as f:
            f.write("host all all %s.0/24 trust\n" % self.subnet)
        options = ["-k", directory, "-p", str(port), "-c", "listen_addresses=" + self.addr(node),
                   "-c", "max_connections=300", "-c", "max_prepared_transactions=100",
                   "-c", "fsync=on", "-c", "synchronous_commit=on"]
        for s in settings:
            options += ["-c", s]
        self.postgres.append((node, data))
        self._pg_start[data] = self.exec_argv(node, _as_postgres(
            _pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(directory, "server.log"), "-w",
            "-t", "60", "-o", " ".join(options), "start"))
        _sh(self._pg_start[data], timeout=90)
        tail = " port=%d user=postgres dbname=postgres" % port
        return "host=%s%s" % (self.addr(node), tail), "host=%s%s" % (directory, tail)

    def crash_postgres(self, directory):
        """Stops the server start_postgres() started in `directory` as a crash would (pg_ctl
        -m immediate: every process killed at once, no checkpoint; the next start recovers
        from the WAL)."""
        data = os.path.join(directory, "data")
        node = next(n for n, d in self.postgres if d == data)
        _sh(self.exec_argv(node, _as_postgres(_pg_bin("pg_ctl"), "-D", data, "-m",
                                              "immediate", "-w", "stop")), check=False)

    def restart_postgres(self, directory):
        """Starts that server again, as start_postgres() did (crash recovery runs first)."""
        _sh(self._pg_start[os.path.join(directory, "data")], timeout=120)

    # --- faults --------------------------------------------------------------------------

    def loss(self, percent, between=None, name="loss"):
        """Drops `percent` % of the IPv4 packets between any two nodes, or only between the
        groups between=(nodes, nodes), in both directions."""
        match = self._between(between)
        rules = []
        for m in match:
            rules.append("%s counter" % m)
            rules.append("%s numgen random mod 100 < %d counter drop" % (m, percent))
        what = "between %s" % _groups(between) if between else "between any two nodes"
        return self._bridge_fault(name, "loss", "%d%% packet loss %s" % (percent, what), rules)

    def partition(self, a, b, name="partition", oneway=False):
        """Drops every IPv4 packet between the nodes `a` and the nodes `b`, both ways; with
        `oneway`, only those from `a` to `b` (an asymmetric partition: what `b` sends still
        arrives)."""
        matches = self._between((a, b))
        if oneway:
            matches = matches[:1]
            what = "one-way partition %s -> %s" % (",".join(a), ",".join(b))
        else:
            what = "partition %s" % _groups((a, b))
        rules = ["%s counter drop" % m for m in matches]
        return self._bridge_fault(name, "partition", what, rules)

    def duplicate(self, percent, nodes=None, name="duplicate"):
        """Sends a copy of `percent` % of the packets each of `nodes` (default all) sends."""
        f = self._new_fault(name, "duplicate", "%d%% of the packets sent by %s duplicated" %
                            (percent, ",".join(nodes or self.nodes)))
        for node in nodes or self.nodes:
            table = "fault_" + name
            script = ("table ip %s {\n chain out {\n  type filter hook output priority 0;\n"
                      "  oifname \"eth0\" counter\n"
                      "  oifname \"eth0\" numgen random mod 100 < %d counter "
                      "dup to ip daddr device \"eth0\"\n }\n}\n" % (table, percent))
            self._nft(self.ns(node), script)
            f.tables.append((self.ns(node), "ip", table))
        return name

    def delay(self, ms, jitter_ms=0, nodes=None, name="delay"):
        """Holds each packet that each of `nodes` (default all) sends for ms +- jitter_ms
        (uniform) before it leaves: netdelay fed by an NFQUEUE rule on eth0. A jitter at
        least as long as the gap between packets reorders them too. Delays do not add up: a
        packet netdelay lets go leaves the iptables chain, so of two delay faults on one node
        only the first acts (the other faults, in nftables tables of their own, still do)."""
        if not self.netdelay:
            raise RuntimeError("a delay fault needs the netdelay binary (Topology(netdelay=))")
        f = self._new_fault(name, "delay", "%d+-%d ms delay on the packets sent by %s" %
                            (ms, jitter_ms, ",".join(nodes or self.nodes)))
        self._queue += 1
        queue = self._queue
        for i, node in enumerate(nodes or self.nodes):
            log = "/tmp/%s-netdelay-%s-%s.log" % (self.tag, name, node)
            with open(log, "w"):
                pass
            with open(log, "a") as out:
                p = subprocess.Popen(self.exec_argv(node, [
                    self.netdelay, "--queue", str(queue), "--delay", str(ms), "--jitter",
                    str(jitter_ms), "--seed", str(self.seed + 1000 * queue + i)]),
                    stdout=out, stderr=subprocess.STDOUT)
            f.delayers.append((self.ns(node), p, log))
            deadline = time.time() + 10
            while "ready" not in open(log).read():
                if p.poll() is not None or time.time() > deadline:
                    raise RuntimeError("netdelay in %s did not start: %s" %
                                       (node, open(log).read()))
                time.sleep(0.02)
            rule = ["OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", str(queue),
                    "--queue-bypass"]
            _sh(["ip", "netns", "exec", self.ns(node), "iptables", "-A"] + rule)
            f.iptables.append((self.ns(node), rule))
        return name

    def apply(self, spec, name=None):
        """Applies a fault written as a string, for command lines:
          loss:PCT[:A/B]        partition:A/B        oneway:A/B
          dup:PCT[:NODES]       delay:MS[:JITTER[:NODES]]
        where A, B and NODES are comma-separated node names (oneway: A's packets to B are
        dropped, B's to A pass). Returns the fault's name (the
        kind, unless `name` says otherwise)."""
        parts = spec.split(":")
        kind = parts[0]
        name = name or kind

        def nodes(s):
            return [n for n in s.split(",") if n]

        def groups(s):
            a, b = s.split("/")
            return nodes(a), nodes(b)

        if kind == "loss":
            return self.loss(int(parts[1]), groups(parts[2]) if len(parts) > 2 else None, name)
        if kind == "partition":
            a, b = groups(parts[1])
            return self.partition(a, b, name)
        if kind == "oneway":
            a, b = groups(parts[1])
            return self.partition(a, b, name, oneway=True)
        if kind in ("dup", "duplicate"):
            return self.duplicate(int(parts[1]), nodes(parts[2]) if len(parts) > 2 else None,
                                  name)
        if kind == "delay":
            return self.delay(int(parts[1]), int(parts[2]) if len(parts) > 2 else 0,
                              nodes(parts[3]) if len(parts) > 3 else None, name)
        raise ValueError("unknown fault %r" % spec)

    def stats(self, name):
        """What fault `name` did so far: {"seen": packets it looked at, "acted": packets it
        dropped or duplicated} from its rules' counters (a delay fault: "acted" is the packets
        its NFQUEUE rules sent to netdelay, and after clear() also "reordered": how many of
        them left after a packet that came later). After clear(), the figures at clearing."""
        f = self.faults.get(name)
        if f is None:
            raise KeyError(name)
        if f.final_stats is not None:
            return f.final_stats
        seen = acted = 0
        for ns, family, table in f.tables:
            out = _sh(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", family, table],
                      check=False)
            for item in (json.loads(out).get("nftables", []) if out else []):
                rule = item.get("rule")
                if not rule:
                    continue
                counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
                if counter is None:
                    continue
                if any(k in e for e in rule["expr"] for k in ("drop", "dup")):
                    acted += counter["packets"]
                else:
                    seen += counter["packets"]
        for ns, rule in f.iptables:
            out = _sh(["ip", "netns", "exec", ns, "iptables", "-L", "OUTPUT", "-v", "-x", "-n"],
                      check=False)
            for line in out.splitlines():
                if "NFQUEUE" in line and "num %s " % rule[6] in line + " ":
                    acted += int(line.split()[0])
        if f.kind == "partition":
            seen = acted
        if f.kind == "delay":
            seen = acted
        return {"seen": seen, "acted": acted}

    def clear(self, name):
        """Removes fault `name`; returns its stats() at that moment."""
        f = self.faults.get(name)
        if f is None or f.final_stats is not None:
            return f.final_stats if f else None
        st = self.stats(name)
        for ns, rule in f.iptables:
            _sh(["ip", "netns", "exec", ns, "iptables", "-D"] + rule, check=False)
        for ns, p, log in f.delayers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # releases the packets it holds, then exits
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            try:
                with open(log) as lf:
                    m = re.search(r"(\d+) left out of order", lf.read())
                if m:
                    st["reordered"] = st.get("reordered", 0) + int(m.group(1))
                os.unlink(log)
            except OSError:
                pass
        for ns, family, table in f.tables:
            _sh(["ip", "netns", "exec", ns, "nft", "delete", "table", family, table], check=False)
        f.cleared_at = time.time()
        f.final_stats = st
        del self.faults[name]
        return st

    def clear_all(self):
        for name in list(self.faults):
            self.clear(name)

    def active(self):
        """{name: description} of the faults in force."""
        return {n: f.description for n, f in self.faults.items()}

    # --- internals -----------------------------------------------------------------------

    def _new_fault(self, name, kind, description):
        if name in self.faults:
            raise ValueError("a fault named %r is in force already" % name)
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError("fault name %r: letters, digits and _ only" % name)
        f = Fault(name, kind, description)
        self.faults[name] = f
        return f

    def _between(self, between):
        """nft matches for the packets between two groups of nodes (both directions), or
        between any two nodes."""
        if not between:
            return ["ip saddr %s.0/24 ip daddr %s.0/24" % (self.subnet, self.subnet)]
        a, b = ("{ %s }" % ", ".join(self.addrs(g)) for g in between)
        return ["ip saddr %s ip daddr %s" % (a, b), "ip saddr %s ip daddr %s" % (b, a)]

    def _bridge_fault(self, name, kind, description, rules):
        f = self._new_fault(name, kind, description)
        table = "fault_" + name
        # "forward" hook of the bridge family: every packet from one port to another.
        script = ("table bridge %s {\n chain pass {\n  type filter hook forward priority 0;\n"
                  % table)
        script += "".join("  %s\n" % r for r in rules) + " }\n}\n"
        try:
            self._nft(self.ns("switch"), script)
        except Exception:
            del self.faults[name]
            raise
        f.tables.append((self.ns("switch"), "bridge", table))
        return name

    @staticmethod
    def _nft(ns, script):
        p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise RuntimeError("nft in %s failed: %s\n%s" % (ns, p.stdout, script))


def _groups(between):
    a, b = between
    return "%s <-> %s" % (",".join(a), ",".join(b))


def _kill_namespace_pids(ns):
    """SIGKILLs, by pid, the processes still in namespace `ns` (never this one)."""
    for _ in range(3):
        pids = [int(p) for p in _sh(["ip", "netns", "pids", ns], check=False).split()
                if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _pg_bin(name):
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[4]))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return os.path.join(dirs[-1], name)


def _as_postgres(*argv):
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + list(argv)
