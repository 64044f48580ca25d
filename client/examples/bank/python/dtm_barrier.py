"""DTM's sub-transaction barrier for Python branch services on PostgreSQL (psycopg2).

The same table (dtm_barrier.barrier) and rules as the C++ barrier in client/pg/barrier.h and
DTM's SDKs, so services in every language can share one database:

    barrier = Barrier.from_context(context)          # the dtm-* metadata of the call
    outcome = barrier.call(conn, lambda cur: debit(cur, user, amount))

call() runs the business function at most once per (gid, branch_id, op), in one local
transaction with the barrier rows; a compensate/cancel whose action/try never ran is a
successful no-op that also blocks the late action/try.
"""

OPS = ("action", "compensate", "try", "confirm", "cancel", "msg")
ORIGIN = {"compensate": "action", "cancel": "try"}
MSG_BRANCH, MSG_OP, MSG_BARRIER_ID, ROLLBACK = "00", "msg", "01", "rollback"

RAN, DUPLICATE, NULL_COMPENSATION, HANGING = "ran", "duplicate", "null-compensation", "hanging"

DDL = """
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock(7310452901);
CREATE SCHEMA IF NOT EXISTS dtm_barrier;
CREATE SEQUENCE IF NOT EXISTS dtm_barrier.barrier_seq;
CREATE TABLE IF NOT EXISTS dtm_barrier.barrier (
  id bigint NOT NULL DEFAULT nextval('dtm_barrier.barrier_seq'::regclass),
  trans_type varchar(45) DEFAULT '', gid varchar(128) DEFAULT '',
  branch_id varchar(128) DEFAULT '', op varchar(45) DEFAULT '',
  barrier_id varchar(45) DEFAULT '', reason varchar(45) DEFAULT '',
  create_time timestamp(0) with time zone DEFAULT NULL,
  update_time timestamp(0) with time zone DEFAULT NULL,
  PRIMARY KEY (id), CONSTRAINT uniq_barrier UNIQUE (gid, branch_id, op, barrier_id));
"""

INSERT = ("INSERT INTO dtm_barrier.barrier(trans_type, gid, branch_id, op, barrier_id, reason) "
          "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT ON CONSTRAINT uniq_barrier DO NOTHING")
READ = ("SELECT reason FROM dtm_barrier.barrier "
        "WHERE gid = %s AND branch_id = %s AND op = %s AND barrier_id = %s")


class BarrierError(Exception):
    """Bad dtm-* metadata (the handler answers INVALID_ARGUMENT)."""


class Duplicate(Exception):
    """The local transaction of a two-phase message already ran (or was rolled back)."""


def create_barrier_table(conn):
    with conn:  # one transaction
        with conn.cursor() as cur:
            cur.execute(DDL)


class Barrier:
    def __init__(self, trans_type, gid, branch_id, op):
        self.trans_type, self.gid, self.branch_id, self.op = trans_type, gid, branch_id, op
        self.calls = 0

    @classmethod
    def from_metadata(cls, md):
        for key in ("dtm-gid", "dtm-branch_id", "dtm-op"):
            if not md.get(key):
                raise BarrierError("barrier: metadata %s is missing; is this a call from dtmd?" % key)
        if md["dtm-op"] not in OPS:
            raise BarrierError('barrier: metadata dtm-op "%s" is not one of %s'
                               % (md["dtm-op"], ", ".join(OPS)))
        return cls(md.get("dtm-trans_type", ""), md["dtm-gid"], md["dtm-branch_id"], md["dtm-op"])

    @classmethod
    def from_context(cls, context):
        return cls.from_metadata(dict(context.invocation_metadata()))

    @classmethod
    def for_msg(cls, gid):
        return cls("msg", gid, MSG_BRANCH, MSG_OP)

    def _insert(self, cur, op, barrier_id, reason):
        cur.execute(INSERT, (self.trans_type, self.gid, self.branch_id, op, barrier_id, reason))
        return cur.rowcount == 1

    def call(self, conn, business):
        """Runs business(cursor) in a local transaction behind the barrier; returns the outcome.
        An exception from business rolls everything back and propagates."""
        self.calls += 1
        bid = "%02d" % self.calls
        with conn:  # commits on success, rolls back on an exception
            with conn.cursor() as cur:
                origin = ORIGIN.get(self.op)
                origin_new = origin is not None and self._insert(cur, origin, bid, self.op)
                current_new = self._insert(cur, self.op, bid, self.op)
                if not current_new and self.op == MSG_OP:
                    raise Duplicate("barrier: the local transaction of message %s already ran"
                                    % self.gid)
                if not current_new:
                    cur.execute(READ, (self.gid, self.branch_id, self.op, bid))
                    row = cur.fetchone()
                    hanging = origin is None and self.op != "confirm" and row and row[0] != self.op
                    return HANGING if hanging else DUPLICATE
                if origin_new:
                    return NULL_COMPENSATION
                business(cur)
                return RAN

    def query_prepared(self, conn):
        """The msg back-check: True when the local transaction committed; otherwise records
        the "rollback" marker (a late local transaction then fails) and returns False."""
        with conn:
            with conn.cursor() as cur:
                cur.execute(INSERT, ("msg", self.gid, MSG_BRANCH, MSG_OP, MSG_BARRIER_ID, ROLLBACK))
                cur.execute(READ, (self.gid, MSG_BRANCH, MSG_OP, MSG_BARRIER_ID))
                return cur.fetchone()[0] != ROLLBACK
