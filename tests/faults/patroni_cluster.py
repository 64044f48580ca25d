#!/usr/bin/python3
"""A throwaway Patroni cluster for fault tests: one etcd and N PostgreSQL 15 nodes, each run by
its own Patroni daemon, everything on 127.0.0.1 with free ports and all state in one temp dir.

    cluster = PatroniCluster(tmp_dir, nodes=2, synchronous=True)
    cluster.start()                       # etcd, then node0 (bootstraps) and the others
    cluster.conninfo()                    # the multi-host URL a client (dtmd) uses
    cluster.kill_node("node0")            # kill -9: patroni and every postgres process
    cluster.start_node("node0")           # it rejoins as a standby (pg_rewind)
    cluster.switchover("node1", "node0")  # patronictl switchover --force
    cluster.stop()                        # kills whatever is left (also at exit)

Run it by hand to get a cluster to play with:  patroni_cluster.py [--async] [--nodes N]

Why these settings:
- synchronous_mode: true makes Patroni keep one standby in synchronous_standby_names, so a
  COMMIT is acknowledged only once that standby has flushed it, and Patroni promotes only
  that standby: an acknowledged commit survives the loss of the primary. synchronous_mode_strict
  stays off: with the standby gone the primary carries on alone (the test waits until the
  standby is synchronous again before it hurts the primary).
- ttl 20, loop_wait 1, retry_timeout 3: the smallest values Patroni's rules allow (ttl >= 20,
  loop_wait >= 1, retry_timeout >= 3, loop_wait + 2 * retry_timeout <= ttl). A primary whose
  Patroni dies keeps the leader key until its ttl runs out, so losing the node costs up to
  ttl seconds; a crash of postgres under a live Patroni, or a switchover, takes a few seconds.
- primary_start_timeout 0: when the primary's postgres crashes but its Patroni lives, Patroni
  fails over to the synchronous standby at once rather than restarting postgres in place
  (the default waits 300 s for crash recovery first).
- use_pg_rewind with wal_log_hints: a primary killed with commits its standby never saw
  (not acknowledged to anyone, in synchronous mode) has diverged; pg_rewind cuts it back to
  the new primary's timeline so it rejoins as a standby without a full copy.
  remove_data_directory_on_rewind_failure/diverged_timelines fall back to a fresh copy if
  rewinding is impossible; node_log() shows which happened.
- Trust authentication on loopback only; PostgreSQL runs as user postgres (it refuses root),
  so each Patroni daemon runs as postgres through setpriv; etcd and patronictl run as root.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

PG_BIN = "/usr/lib/postgresql/15/bin"
ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"
PATRONICTL = "/usr/bin/patronictl"

# Timestamps in the server logs look like "2026-01-02 15:04:05.123 UTC".
PG_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC")


def free_port():
    """A TCP port nothing listens on now (the kernel's pick for a socket bound to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=2.0, method="GET", body=None):
    """(status, parsed JSON or None) of an HTTP request; (None, None) if nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return None, None


def pg_log_time(line):
    """The unix time of a PostgreSQL log line that starts with %m (in UTC), or None."""
    m = PG_LOG_TIME.match(line)
    if not m:
        return None
    import calendar
    tm = time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")
    return calendar.timegm(tm) + int(m.group(1)[20:23]) / 1000.0


def pids_of_tree(root):
    """`root` and every process below it, from /proc (parents before children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pids_mentioning(text):
    """Processes whose command line contains `text` (a path unique to this cluster)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(entry))
    return out


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Node:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.dir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "patroni.yml")
        self.log_path = os.path.join(self.dir, "patroni.log")
        self.pg_log_dir = os.path.join(self.dir, "pglog")
        self.pg_port = free_port()
        self.api_port = free_port()
        self.proc = None  # the Patroni daemon

    @property
    def api(self):
        return "http://127.0.0.1:%d" % self.api_port

    def postmaster_pid(self):
        """The postmaster's pid from postmaster.pid, if that process still runs."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if self.data_dir.encode() not in f.read():
                    return None  # a stale file: that pid is someone else now
        except OSError:
            return None
        return pid

    def conninfo(self, dbname="postgres"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s connect_timeout=3" % (
            self.pg_port, dbname)

    def write_config(self):
        c = self.cluster
        cfg = {
            "scope": c.scope,
            "namespace": "/dtm-faults/",
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": "127.0.0.1:%d" % self.api_port,
                        "connect_address": "127.0.0.1:%d" % self.api_port},
            "etcd3": {"hosts": ["127.0.0.1:%d" % c.etcd_port]},
            "bootstrap": {
                "dcs": {
                    "ttl": c.ttl, "loop_wait": c.loop_wait, "retry_timeout": c.retry_timeout,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "primary_start_timeout": 0,
                    "synchronous_mode": c.synchronous,
                    "synchronous_mode_strict": False,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_level": "replica",
                            "wal_log_hints": "on",
                            "hot_standby": "on",
                            "max_connections": 200,
                            "max_prepared_transactions": 64,
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "256MB",
                            # Two servers share the machine with the workload. fsync and
                            # synchronous_commit keep their defaults (on).
                            "shared_buffers": "64MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": "127.0.0.1:%d" % self.pg_port,
                "connect_address": "127.0.0.1:%d" % self.pg_port,
                "data_dir": self.data_dir,
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(self.dir, "pgpass"),
                "use_unix_socket": False,
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "parameters": {
                    "unix_socket_directories": self.dir,
                    "logging_collector": "on",
                    "log_directory": self.pg_log_dir,
                    "log_filename": "postgresql.log",
                    "log_rotation_age": 0,
                    "log_rotation_size": 0,
                    "log_timezone": "UTC",
                    "log_line_prefix": "%m [%p] ",
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
                "remove_data_directory_on_rewind_failure": True,
                "remove_data_directory_on_diverged_timelines": True,
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML

    def start(self):
        """Starts this node's Patroni daemon (as user postgres); it starts postgres itself."""
        log = open(self.log_path, "a")
        log.write("--- patroni start at %.3f\n" % time.time())
        log.flush()
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
             PATRONI, self.config],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir,
            env={"PATH": "/usr/bin:/bin", "HOME": self.dir, "LANG": "C.UTF-8",
                 "PYTHONUNBUFFERED": "1"},
            start_new_session=True)
        log.close()

    def kill(self):
        """kill -9 of the whole node at once, as if its machine died: the Patroni daemon, the
        postmaster and every process under it. Returns the time of the kill."""
        pids = []
        if self.proc is not None and self.proc.poll() is None:
            pids += pids_of_tree(self.proc.pid)
        pm = self.postmaster_pid()
        if pm:
            pids += pids_of_tree(pm)
        t = time.time()
        for pid in pids:
            kill_quietly(pid)
        if self.proc is not None:
            self.proc.wait()
        deadline = time.time() + 10
        while any(os.path.exists("/proc/%d" % p) and not self._zombie(p) for p in pids):
            if time.time() > deadline:
                break
            time.sleep(0.01)
        return t

    def kill_postmaster(self):
        """kill -9 of the postmaster and its children only: Patroni lives on and reacts."""
        pm = self.postmaster_pid()
        pids = pids_of_tree(pm) if pm else []
        t = time.time()
        for pid in pids:
            kill_quietly(pid)
        return t

    @staticmethod
    def _zombie(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                s = f.read()
            return s[s.rindex(")") + 2] == "Z"
        except OSError:
            return True

    def state(self):
        """Patroni's view of this node (GET /patroni), or None if its API does not answer."""
        return http_json(self.api + "/patroni", timeout=1.0)[1]

    def query(self, sql, args=(), dbname="postgres"):
        """Rows of `sql` run on this node's postgres (psycopg2, autocommit)."""
        import psycopg2
        conn = psycopg2.connect(self.conninfo(dbname))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def walsender_pid(self, standby):
        """On a primary: the pid of the walsender streaming to node `standby`, or None."""
        rows = self.query("SELECT pid FROM pg_stat_replication WHERE application_name = %s",
                          (standby,))
        return rows[0][0] if rows else None

    def in_recovery(self):
        """True: a standby; False: a primary; None: postgres does not answer."""
        try:
            return self.query("SELECT pg_is_in_recovery()")[0][0]
        except Exception:  # noqa: BLE001 - any failure to connect or query means "no answer"
            return None

    def pg_log(self):
        try:
            with open(os.path.join(self.pg_log_dir, "postgresql.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pg_log_event(self, pattern, after):
        """The time of the first line of this node's postgres log matching `pattern` whose
        timestamp is at or after `after`, or None."""
        rx = re.compile(pattern)
        for line in self.pg_log().splitlines():
            t = pg_log_time(line)
            if t is not None and t >= after - 0.001 and rx.search(line):
                return t
        return None

    def patroni_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class PatroniCluster:
    def __init__(self, base_dir, nodes=2, synchronous=True, ttl=20, loop_wait=1,
                 retry_timeout=3):
        self.dir = os.path.join(base_dir, "patroni")
        self.synchronous = synchronous
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.scope = "dtm-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.etcd = None
        self.nodes = {}
        os.makedirs(self.dir)
        # PostgreSQL runs as postgres: it must reach its directories below the temp dir.
        for d in (base_dir, self.dir):
            os.chmod(d, 0o755)
        for i in range(nodes):
            n = Node(self, "node%d" % i)
            os.makedirs(n.dir)
            os.makedirs(n.pg_log_dir)
            n.write_config()
            shutil.chown(n.dir, "postgres", "postgres")
            shutil.chown(n.pg_log_dir, "postgres", "postgres")
            shutil.chown(n.config, "postgres", "postgres")
            self.nodes[n.name] = n
        self._stopped = False
        import atexit
        atexit.register(self.stop)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout=120):
        """etcd, then the first node (it bootstraps the cluster: initdb), then the others
        (each copies the primary with pg_basebackup); returns once every node streams and,
        in synchronous mode, one of them is the synchronous standby."""
        etcd_dir = os.path.join(self.dir, "etcd")
        log = open(os.path.join(self.dir, "etcd.log"), "a")
        peer = "http://127.0.0.1:%d" % self.etcd_peer_port
        client = "http://127.0.0.1:%d" % self.etcd_port
        self.etcd = subprocess.Popen(
            [ETCD, "--name", "etcd0", "--data-dir", etcd_dir,
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "etcd0=" + peer, "--initial-cluster-state", "new",
             "--initial-cluster-token", self.scope],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._wait(lambda: http_json(client + "/health")[0] == 200, 30, "etcd to answer")
        first = self.nodes["node0"]
        first.start()
        self._wait(lambda: first.in_recovery() is False and
                   (first.state() or {}).get("role") in ("master", "primary"), timeout,
                   "node0 to bootstrap the cluster")
        for n in list(self.nodes.values())[1:]:
            n.start()
        self.wait_healthy(timeout)

    def stop(self):
        """Kills every process of the cluster (Patroni, postgres, etcd): a test throws the
        cluster away, so nothing is shut down politely. Leaves the files for the caller."""
        if self._stopped:
            return
        self._stopped = True
        for n in self.nodes.values():
            if n.proc is not None and n.proc.poll() is None:
                for pid in pids_of_tree(n.proc.pid):
                    kill_quietly(pid)
                n.proc.wait()
            pm = n.postmaster_pid()
            if pm:
                for pid in pids_of_tree(pm):
                    kill_quietly(pid)
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.kill()
            self.etcd.wait()
        # Anything else still running from this cluster's directory (a postgres started by a
        # Patroni killed mid-start, a pg_rewind, pg_basebackup...).
        for pid in pids_mentioning(self.dir):
            kill_quietly(pid)

    # --- what the cluster looks like ---------------------------------------------------------

    def members(self):
        """Patroni's member list (GET /cluster) from the first node that answers, else []."""
        for n in self.nodes.values():
            if n.proc is None or n.proc.poll() is not None:
                continue
            status, body = http_json(n.api + "/cluster", timeout=1.0)
            if status == 200 and body:
                return body.get("members", [])
        return []

    def leader(self):
        """The name of the node Patroni says leads, or None."""
        for m in self.members():
            if m.get("role") == "leader":
                return m["name"]
        return None

    def primary(self):
        """The node whose postgres says it is not in recovery (there should be one at most)."""
        found = [n for n in self.nodes.values() if n.in_recovery() is False]
        return found[0].name if len(found) == 1 else None

    def standby_names(self, primary):
        """Application names of the standbys streaming from `primary`, with their sync state:
        {name: 'sync'|'async'|'potential'|'quorum'}, from pg_stat_replication."""
        try:
            rows = self.nodes[primary].query(
                "SELECT application_name, sync_state FROM pg_stat_replication "
                "WHERE state = 'streaming'")
        except Exception:  # noqa: BLE001 - a primary that does not answer has no standbys
            return {}
        return dict(rows)

    def healthy(self):
        """Every node runs; exactly one primary, and every other node streams from it; in
        synchronous mode one of them is its synchronous standby, for Patroni too."""
        p = self.primary()
        if p is None or self.leader() != p:
            return False
        standbys = self.standby_names(p)
        others = [n for n in self.nodes if n != p]
        if any(o not in standbys for o in others):
            return False
        if self.synchronous and others:
            if "sync" not in standbys.values():
                return False
            roles = {m["name"]: m.get("role") for m in self.members()}
            if "sync_standby" not in roles.values():
                return False
        return True

    def wait_healthy(self, timeout=120):
        self._wait(self.healthy, timeout, "the cluster to be healthy")

    def conninfo(self, dbname="postgres", connect_timeout=2):
        """The libpq URL naming every node, that connects to whichever is the primary."""
        hosts = ",".join("127.0.0.1:%d" % n.pg_port for n in self.nodes.values())
        return ("postgresql://postgres@%s/%s?target_session_attrs=read-write"
                "&connect_timeout=%d" % (hosts, dbname, connect_timeout))

    # --- faults --------------------------------------------------------------------------------

    def kill_node(self, name):
        return self.nodes[name].kill()

    def kill_postmaster(self, name):
        return self.nodes[name].kill_postmaster()

    def start_node(self, name):
        self.nodes[name].start()

    def switchover(self, leader, candidate):
        """patronictl switchover --force; returns (time just before the command, its
        CompletedProcess)."""
        t = time.time()
        cp = subprocess.run(
            [PATRONICTL, "-c", self.nodes[leader].config, "switchover", self.scope,
             "--leader", leader, "--candidate", candidate, "--force"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
            env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8"))
        return t, cp

    def wait_primary(self, name, timeout=120):
        """Waits until `name`'s postgres is a primary and Patroni says it leads."""
        node = self.nodes[name]
        self._wait(lambda: node.in_recovery() is False and self.leader() == name, timeout,
                   "%s to be promoted" % name)

    # --- helpers ---------------------------------------------------------------------------------

    def _wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.1)
        if cond():
            return
        raise RuntimeError("timed out after %ds waiting for %s\n%s" % (timeout, what,
                                                                     self.describe()))

    def describe(self):
        """The member list and the tail of each node's logs, for a failure message."""
        out = ["members: %s" % json.dumps(self.members())]
        for n in self.nodes.values():
            out.append("--- %s patroni.log (tail)" % n.name)
            out.extend(n.patroni_log().splitlines()[-15:])
            out.append("--- %s postgresql.log (tail)" % n.name)
            out.extend(n.pg_log().splitlines()[-10:])
        return "\n".join(out)


def main():
    import argparse
    import tempfile
    parser = argparse.ArgumentParser(description="Run a throwaway Patroni cluster until ^C.")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--async", dest="asynchronous", action="store_true",
                        help="synchronous_mode off")
    parser.add_argument("--dir", help="where its files go (default: a new temp dir)")
    args = parser.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="dtm-patroni-")
    cluster = PatroniCluster(base, nodes=args.nodes, synchronous=not args.asynchronous)
    t = time.time()
    cluster.start()
    print("cluster up in %.1fs; files in %s" % (time.time() - t, cluster.dir))
    print("conninfo: %s" % cluster.conninfo())
    for n in cluster.nodes.values():
        print("  %s: postgres 127.0.0.1:%d, REST API %s, config %s" % (
            n.name, n.pg_port, n.api, n.config))
    print("patronictl -c %s list" % cluster.nodes["node0"].config)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
