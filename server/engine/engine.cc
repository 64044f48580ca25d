#include "server/engine/engine.h"

#include <atomic>
#include <cstdio>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace dtm {

struct Engine::Active {
  std::shared_ptr<Strand> strand;
  TransState state;  // touched only on `strand`
  std::vector<SubmitDone> submit_waiters;
  std::vector<TxnDone> stop_waiters;
  std::optional<TimerQueue::TimerId> timer;
  absl::Time timer_at = absl::InfinitePast();
  bool retired = false;
  // Whether this coordinator holds the lease (created or claimed it here), and until when.
  // Branches are called only under a lease with time to spare; a transaction loaded for a
  // ForceStop from another replica's hands is not owned and only writes its end, unfenced.
  bool owned = false;
  std::atomic<int64_t> lease_until_us{INT64_MIN};
  bool starved = false;  // calls were held back for want of lease time

  absl::Time lease_until() const { return absl::FromUnixMicros(lease_until_us.load()); }
  void ExtendLease(absl::Time until) {
    int64_t us = absl::ToUnixMicros(until);
    int64_t cur = lease_until_us.load();
    while (cur < us && !lease_until_us.compare_exchange_weak(cur, us)) {
    }
  }
};

namespace {

// Longer than any claim takes from its read to Resume.
constexpr absl::Duration kRetiredMemory = absl::Minutes(1);

double Jitter() {
  thread_local absl::BitGen gen;
  return absl::Uniform(gen, 0.0, 1.0);
}

SubmitResult ResultOf(const Transaction& t) {
  return SubmitResult{t.gid, t.status, t.rollback_reason};
}

// The transaction as a reader may rely on: the global status is the durable one (a status
// whose write is still in flight is not reported yet); branches show their latest results.
Transaction DurableView(const TransState& s) {
  Transaction t = s.txn;
  if (t.status != s.durable_status) {
    t.status = s.durable_status;
    if (!IsTerminal(t.status)) t.finish_time = absl::InfinitePast();
    if (t.status == GlobalStatus::kSubmitted) t.rollback_reason.clear();
  }
  return t;
}

bool PowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

// A branch that must eventually succeed (compensate, confirm, cancel, a msg's action) and
// keeps failing needs a human: say so in the log, at attempts 1, 2, 4, 8, ... so a stuck one
// stays visible without flooding.
void LogIfStuck(const Transaction& t, int index, const BranchResult& r) {
  const Branch& b = t.branches[index];
  if (r.outcome == CallOutcome::kSuccess || !PowerOfTwo(b.attempts)) return;
  if (t.trans_type == TransType::kSaga && b.op == BranchOp::kAction) return;
  std::fprintf(stderr, "dtmd: %s not done yet gid=%s branch_id=%s target=%s attempts=%d error=%s\n",
               BranchOpName(b.op), t.gid.c_str(), b.branch_id.c_str(), b.target.c_str(), b.attempts,
               r.message.c_str());
}

absl::Status TypeMismatch(const Transaction& t, TransType asked) {
  return absl::AlreadyExistsError(absl::StrCat("gid '", t.gid, "' already exists as a ",
                                               TransTypeName(t.trans_type), " transaction, not a ",
                                               TransTypeName(asked)));
}

absl::Status Unavailable(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": the coordinator is shutting down"));
}

}  // namespace

Engine::Engine(EngineOptions options, Store* store, BranchCaller* caller, Clock* clock,
               TimerQueue* timers, ThreadPool* pool)
    : options_(std::move(options)),
      store_(store),
      caller_(caller),
      clock_(clock),
      timers_(timers),
      pool_(pool),
      self_address_(options_.self_address) {}

Engine::~Engine() = default;

void Engine::set_self_address(std::string address) {
  absl::MutexLock lock(&mu_);
  self_address_ = std::move(address);
}

std::string Engine::self_address() const {
  absl::MutexLock lock(&mu_);
  return self_address_;
}

size_t Engine::active_count() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

bool Engine::IsActive(const std::string& gid) const {
  absl::MutexLock lock(&mu_);
  return active_.contains(gid);
}

Engine::ActivePtr Engine::Activate(Transaction txn, bool recovered) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(txn.gid);
  if (it != active_.end()) return it->second;
  if (recovered && retired_.contains(txn.gid)) return nullptr;
  auto a = std::make_shared<Active>();
  a->strand = std::make_shared<Strand>(pool_);
  std::string gid = txn.gid;
  a->owned = !txn.owner.empty() && txn.owner == options_.owner;
  if (a->owned) a->ExtendLease(txn.lease_expire);
  // A msg is delivered `delay` after it was submitted (after a restart, its stored
  // next_retry_time already held the claim back until then).
  absl::Time deliver_at = txn.update_time + txn.options.delay;
  bool delayed =
      !recovered && txn.trans_type == TransType::kMsg && txn.options.delay > absl::ZeroDuration();
  a->state = recovered ? RecoveredTransState(std::move(txn)) : NewTransState(std::move(txn));
  if (delayed) HoldCallsUntil(a->state, deliver_at);
  active_.emplace(std::move(gid), a);
  return a;
}

void Engine::Submit(Transaction txn, SubmitDone done) {
  if (txn.trans_type == TransType::kTcc ||
      (txn.trans_type == TransType::kMsg && txn.branches.empty())) {
    SubmitPrepared(txn.gid, txn.trans_type, txn.options.wait_result, std::move(done));
    return;
  }
  absl::Time now = clock_->Now();
  txn.create_time = txn.update_time = now;
  txn.next_retry_time = now + std::max(options_.lease, txn.options.delay);
  txn.owner = options_.owner;
  txn.lease_expire = now + options_.lease;
  ActivePtr a;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      done(Unavailable("Submit"));
      return;
    }
    auto it = active_.find(txn.gid);
    if (it != active_.end()) a = it->second;
  }
  if (a) {
    AttachSubmit(a, txn.trans_type, txn.options.wait_result, std::move(done));
    return;
  }
  CreateOp op{txn};
  store_->Write(std::move(op), [this, txn = std::move(txn),
                                done = std::move(done)](WriteResult r) mutable {
    pool_->Post([this, txn = std::move(txn), r = std::move(r), done = std::move(done)]() mutable {
      OnCreated(std::move(txn), std::move(r), std::move(done));
    });
  });
}

void Engine::OnCreated(Transaction txn, WriteResult r, SubmitDone done) {
  bool wait = txn.options.wait_result;
  TransType type = txn.trans_type;
  if (r.status.ok()) {
    ActivePtr a = Activate(std::move(txn), /*recovered=*/false);
    AttachSubmit(a, type, wait, std::move(done));
    return;
  }
  if (!absl::IsAlreadyExists(r.status) || !r.existing) {
    done(r.status);
    return;
  }
  const Transaction& existing = *r.existing;
  if (existing.trans_type != type) {
    done(TypeMismatch(existing, type));
    return;
  }
  if (existing.status == GlobalStatus::kPrepared && type == TransType::kMsg) {
    // A prepared msg submitted with its steps again: the commit.
    SubmitPrepared(existing.gid, type, wait, std::move(done));
    return;
  }
  if (ActivePtr a = Find(existing.gid)) {
    AttachSubmit(a, type, wait, std::move(done));
  } else {
    done(ResultOf(existing));
  }
}

Engine::ActivePtr Engine::Find(const std::string& gid) const {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(gid);
  return it == active_.end() ? nullptr : it->second;
}

void Engine::AnswerExisting(const std::string& gid, TransType type, bool wait, SubmitDone done) {
  if (ActivePtr a = Find(gid)) {
    AttachSubmit(a, type, wait, std::move(done));
    return;
  }
  pool_->Post([this, gid, type, done = std::move(done)] {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok()) {
      done(t.status());
    } else if (t->trans_type != type) {
      done(TypeMismatch(*t, type));
    } else {
      done(ResultOf(*t));
    }
  });
}

void Engine::SubmitPrepared(const std::string& gid, TransType type, bool wait, SubmitDone done) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      done(Unavailable("Submit"));
      return;
    }
  }
  if (ActivePtr a = Find(gid)) {  // committed already, running here
    AttachSubmit(a, type, wait, std::move(done));
    return;
  }
  pool_->Post([this, gid, type, wait, done = std::move(done)]() mutable {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (absl::IsNotFound(t.status())) {
      done(absl::NotFoundError(absl::StrCat(TransTypeName(type), " gid '", gid,
                                            "' not found: Prepare it before Submit")));
      return;
    }
    if (!t.ok()) {
      done(t.status());
      return;
    }
    if (t->trans_type != type) {
      done(TypeMismatch(*t, type));
      return;
    }
    if (t->status != GlobalStatus::kPrepared) {  // committed (or ended) before: no second read
      if (ActivePtr a = Find(gid)) {
        AttachSubmit(a, type, wait, std::move(done));
      } else {
        done(ResultOf(*t));
      }
      return;
    }
    LeavePrepared(
        *t, GlobalStatus::kSubmitted, "", "",
        [this, gid, type, wait, done = std::move(done)](absl::Status st, ActivePtr a) mutable {
          if (a) {
            AttachSubmit(a, type, wait, std::move(done));
          } else if (absl::IsFailedPrecondition(st)) {  // it moved on meanwhile
            AnswerExisting(gid, type, wait, std::move(done));
          } else {
            done(st);
          }
        });
  });
}

void Engine::LeavePrepared(const Transaction& prepared, GlobalStatus to, const std::string& reason,
                           const std::string& fence,
                           std::function<void(absl::Status, ActivePtr)> then) {
  absl::Time now = clock_->Now();
  UpdateOp op;
  op.gid = prepared.gid;
  op.owner = fence;
  op.expected_status = GlobalStatus::kPrepared;
  op.new_status = to;
  op.rollback_reason = reason;
  op.update_time = now;
  op.reassign = true;
  if (IsTerminal(to)) {
    op.finish_time = now;
  } else {
    op.next_retry_time = now + std::max(options_.lease, prepared.options.delay);
    op.new_owner = options_.owner;
    op.new_lease_expire = now + options_.lease;
  }
  std::string gid = prepared.gid;
  store_->Write(std::move(op), [this, gid, to, then = std::move(then)](WriteResult r) mutable {
    pool_->Post([this, gid, to, st = std::move(r.status), then = std::move(then)] {
      if (!st.ok() || IsTerminal(to)) {
        then(st, nullptr);
        return;
      }
      absl::StatusOr<Transaction> t = store_->Get(gid);
      if (!t.ok()) {
        // Stored as ours; recovery resumes it once the lease runs out.
        then(t.status(), nullptr);
        return;
      }
      ActivePtr a = Activate(*std::move(t), /*recovered=*/false);
      a->strand->Post([this, a] { Drive(a); });
      then(absl::OkStatus(), a);
    });
  });
}

void Engine::Prepare(Transaction txn, std::function<void(absl::Status)> done) {
  absl::Time now = clock_->Now();
  txn.create_time = txn.update_time = now;
  // Nobody works on it until its client decides or its timeout passes.
  txn.next_retry_time = now + txn.options.timeout_to_fail;
  txn.owner.clear();
  txn.lease_expire = absl::InfinitePast();
  TransType type = txn.trans_type;
  store_->Write(CreateOp{std::move(txn)}, [this, type, done = std::move(done)](WriteResult r) {
    pool_->Post([type, r = std::move(r), done = std::move(done)] {
      if (!absl::IsAlreadyExists(r.status) || !r.existing) {
        done(r.status);
      } else if (r.existing->trans_type != type) {
        done(TypeMismatch(*r.existing, type));
      } else if (r.existing->status != GlobalStatus::kPrepared) {
        done(absl::FailedPreconditionError(
            absl::StrCat(TransTypeName(type), " '", r.existing->gid, "' is already ",
                         GlobalStatusName(r.existing->status), "; Prepare needs a new gid")));
      } else {
        done(absl::OkStatus());  // prepared before: a repeat
      }
    });
  });
}

void Engine::RegisterBranch(BranchRegistration registration,
                            std::function<void(absl::Status)> done) {
  RegisterOp op{std::move(registration)};
  op.update_time = clock_->Now();
  store_->Write(std::move(op), [this, done = std::move(done)](WriteResult r) {
    pool_->Post([done, st = std::move(r.status)] { done(st); });
  });
}

void Engine::Abort(const std::string& gid, TransType type, const std::string& reason,
                   SubmitDone done) {
  // Answers an Abort of `t` that is past PREPARED: a repeat of an earlier abort is fine.
  auto answer = [gid, type](const Transaction& t) -> absl::StatusOr<SubmitResult> {
    if (t.trans_type != type) {
      return absl::FailedPreconditionError(
          absl::StrCat("gid '", gid, "' is a ", TransTypeName(t.trans_type), " transaction, not a ",
                       TransTypeName(type), "; Abort is for a PREPARED tcc or msg"));
    }
    bool aborted = t.status == GlobalStatus::kFailed ||
                   (t.status == GlobalStatus::kAborting && type == TransType::kTcc);
    if (!aborted) {
      return absl::FailedPreconditionError(absl::StrCat(TransTypeName(type), " '", gid,
                                                        "' is already ", GlobalStatusName(t.status),
                                                        "; only a PREPARED one can be aborted"));
    }
    return ResultOf(t);
  };
  if (ActivePtr a = Find(gid)) {
    a->strand->Post([a, answer, done = std::move(done)] {
      Transaction t = a->state.txn;
      t.status = a->state.durable_status;
      done(answer(t));
    });
    return;
  }
  pool_->Post([this, gid, type, reason, answer, done = std::move(done)]() mutable {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok()) {
      done(t.status());
      return;
    }
    if (t->status != GlobalStatus::kPrepared || t->trans_type != type) {
      done(answer(*t));
      return;
    }
    std::string why = reason.empty() ? "aborted by the client" : reason;
    bool wait = t->options.wait_result;
    GlobalStatus to = type == TransType::kTcc ? GlobalStatus::kAborting : GlobalStatus::kFailed;
    LeavePrepared(*t, to, why, "",
                  [this, gid, type, wait, to, why, answer, done = std::move(done)](
                      absl::Status st, ActivePtr a) mutable {
                    if (a) {
                      AttachSubmit(a, type, wait, std::move(done));
                    } else if (st.ok()) {
                      done(SubmitResult{gid, to, why});
                    } else if (absl::IsFailedPrecondition(st)) {  // it moved on meanwhile
                      absl::StatusOr<Transaction> now = store_->Get(gid);
                      done(now.ok() ? answer(*now) : now.status());
                    } else {
                      done(st);
                    }
                  });
  });
}

void Engine::AttachSubmit(const ActivePtr& a, TransType type, bool wait, SubmitDone done) {
  a->strand->Post([this, a, type, wait, done = std::move(done)]() mutable {
    const Transaction& t = a->state.txn;
    if (t.trans_type != type) {
      done(TypeMismatch(t, type));
      return;
    }
    if (!wait || a->retired) {
      SubmitResult r = ResultOf(t);
      r.status = a->state.durable_status;
      done(r);
    } else {
      a->submit_waiters.push_back(std::move(done));
    }
    Drive(a);
  });
}

void Engine::Query(const std::string& gid, TxnDone done) {
  ActivePtr a = Find(gid);
  if (a) {
    a->strand->Post([a, done = std::move(done)] { done(DurableView(a->state)); });
    return;
  }
  pool_->Post([this, gid, done = std::move(done)] { done(store_->Get(gid)); });
}

void Engine::List(ListQuery query, std::function<void(absl::StatusOr<ListPage>)> done) {
  pool_->Post(
      [this, query = std::move(query), done = std::move(done)] { done(store_->List(query)); });
}

void Engine::WithActive(const std::string& gid, std::function<void(const ActivePtr&)> on_active,
                        TxnDone on_stored) {
  ActivePtr a = Find(gid);
  if (a) {
    a->strand->Post([a, on_active = std::move(on_active)] { on_active(a); });
    return;
  }
  pool_->Post([this, gid, on_active = std::move(on_active), on_stored = std::move(on_stored)] {
    absl::StatusOr<Transaction> t = store_->Get(gid);
    if (!t.ok() || IsTerminal(t->status)) {
      on_stored(std::move(t));
      return;
    }
    ActivePtr a = Activate(*std::move(t), /*recovered=*/true);
    if (!a) {
      // It ended while we read it: answer from the store's final word.
      on_stored(store_->Get(gid));
      return;
    }
    a->strand->Post([a, on_active = std::move(on_active)] { on_active(a); });
  });
}

void Engine::ForceStop(const std::string& gid, const std::string& reason, TxnDone done) {
  auto already = [gid](GlobalStatus s) {
    return absl::FailedPreconditionError(absl::StrCat("transaction '", gid, "' is already ",
                                                      GlobalStatusName(s),
                                                      "; ForceStop needs a non-terminal one"));
  };
  WithActive(
      gid,
      [this, reason, done, already](const ActivePtr& a) {
        if (IsTerminal(a->state.txn.status)) {
          done(already(a->state.txn.status));
          return;
        }
        ForceStopTrans(a->state, reason, clock_->Now());
        a->stop_waiters.push_back(done);
        Drive(a);
      },
      [done, already](absl::StatusOr<Transaction> t) {
        if (t.ok()) {
          done(already(t->status));
        } else {
          done(t.status());
        }
      });
}

void Engine::RetryNow(const std::string& gid, std::function<void(absl::Status)> done) {
  ActivePtr a = Find(gid);
  if (!a) {
    // Not worked on here: make it due in the store. The replica holding its lease sees that
    // when it renews; if nobody does, recovery claims it.
    store_->Write(TouchOp{gid, clock_->Now()}, [this, done](WriteResult r) {
      pool_->Post([done, st = std::move(r.status)] { done(st); });
    });
    return;
  }
  a->strand->Post([this, a, done] {
    if (IsTerminal(a->state.txn.status) || a->retired) {
      done(absl::FailedPreconditionError(absl::StrCat("transaction '", a->state.txn.gid,
                                                      "' is already ",
                                                      GlobalStatusName(a->state.txn.status))));
      return;
    }
    RetryAllNow(a->state);
    a->state.persist_not_before = absl::InfinitePast();
    Drive(a);
    done(absl::OkStatus());
  });
}

void Engine::RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done) {
  std::vector<ActivePtr> here;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [gid, a] : active_) here.push_back(a);
  }
  for (const ActivePtr& a : here) {
    a->strand->Post([this, a] {
      if (a->retired || IsTerminal(a->state.txn.status)) return;
      RetryAllNow(a->state);
      a->state.persist_not_before = absl::InfinitePast();
      Drive(a);
    });
  }
  // The rest, on any replica: their owners notice at their next renewal, recovery claims
  // what nobody owns.
  store_->Write(TouchAllOp{clock_->Now()}, [this, done = std::move(done)](WriteResult r) {
    pool_->Post([done, r = std::move(r)] {
      if (r.status.ok()) {
        done(r.touched);
      } else {
        done(r.status);
      }
    });
  });
}

bool Engine::Resume(Transaction txn) {
  if (IsTerminal(txn.status)) return false;
  if (txn.status == GlobalStatus::kPrepared) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || active_.contains(txn.gid)) return false;
    }
    pool_->Post([this, txn = std::move(txn)]() mutable { OnPreparedDue(std::move(txn)); });
    return true;
  }
  ActivePtr existing;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    auto it = active_.find(txn.gid);
    if (it != active_.end()) existing = it->second;
  }
  if (existing) {
    // Our own work whose lease had lapsed (the store was unreachable) and we claimed again.
    if (existing->owned && txn.owner == options_.owner) {
      existing->ExtendLease(txn.lease_expire);
      existing->strand->Post([this, existing] {  // calls held back for want of lease may go
        if (existing->starved && !existing->retired) {
          existing->starved = false;
          Drive(existing);
        }
      });
    }
    return false;
  }
  ActivePtr a = Activate(std::move(txn), /*recovered=*/true);
  if (!a) return false;
  a->strand->Post([this, a] { Drive(a); });
  return true;
}

void Engine::RenewLeases() {
  absl::Time now = clock_->Now();
  std::vector<ActivePtr> due;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (const auto& [gid, a] : active_) {
      if (a->owned && a->lease_until() - now < options_.lease * 2 / 3) due.push_back(a);
    }
  }
  if (due.empty()) return;
  RenewOp op;
  op.owner = options_.owner;
  op.now = now;
  op.lease = options_.lease;
  for (const ActivePtr& a : due) op.gids.push_back(a->state.txn.gid);
  WriteResult r = store_->WriteSync(std::move(op));
  if (!r.status.ok()) {
    // Cannot renew: calls stop as leases run short (Drive); whatever has run out is dropped,
    // as another replica may own it by now.
    for (const ActivePtr& a : due) {
      if (a->lease_until() <= now) a->strand->Post([this, a] { Drop(a); });
    }
    return;
  }
  absl::flat_hash_map<std::string, absl::Time> renewed(r.renewed.begin(), r.renewed.end());
  for (const ActivePtr& a : due) {
    auto it = renewed.find(a->state.txn.gid);
    if (it == renewed.end()) {
      a->strand->Post([this, a] { Drop(a); });
      continue;
    }
    a->ExtendLease(now + options_.lease);
    absl::Time stored_next = it->second;
    a->strand->Post([this, a, stored_next] {
      if (a->retired) return;
      TransState& s = a->state;
      // Stores keep microseconds: compare at that precision.
      if (!s.persist_in_flight &&
          absl::ToUnixMicros(stored_next) < absl::ToUnixMicros(s.txn.next_retry_time) &&
          !IsTerminal(s.txn.status)) {
        // Someone made it due early (RetryNow on another replica).
        RetryAllNow(s);
        s.persist_not_before = absl::InfinitePast();
        a->starved = true;
      }
      if (a->starved) {
        a->starved = false;
        Drive(a);
      }
    });
  }
}

void Engine::Drop(const ActivePtr& a) {
  if (a->retired) return;
  // A write in flight will tell, through its owner fence, whether the work is still ours.
  if (a->state.persist_in_flight) return;
  a->retired = true;
  if (a->timer) timers_->Cancel(*a->timer);
  a->timer.reset();
  std::fprintf(stderr, "dtmd: lease of gid=%s lost; left to its new owner or to recovery\n",
               a->state.txn.gid.c_str());
  // Still running, elsewhere: waiters get the durable status, as at shutdown.
  SubmitResult r = ResultOf(a->state.txn);
  r.status = a->state.durable_status;
  for (SubmitDone& w : a->submit_waiters) w(r);
  a->submit_waiters.clear();
  for (TxnDone& w : a->stop_waiters) {
    w(absl::UnavailableError(
        absl::StrCat("transaction '", a->state.txn.gid, "' moved to another coordinator")));
  }
  a->stop_waiters.clear();
  absl::MutexLock lock(&mu_);
  auto it = active_.find(a->state.txn.gid);
  if (it != active_.end() && it->second == a) active_.erase(it);
}

void Engine::Drive(const ActivePtr& a) {
  if (a->retired) return;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
  }
  absl::Time now = clock_->Now();
  Decision d = Decide(a->state, now, options_.lease);
  if (d.persist) {
    d.persist->owner = a->owned ? options_.owner : "";
    WrittenState written = SummarizeWrite(*d.persist);
    store_->Write(
        std::move(*d.persist), [this, a, written = std::move(written)](WriteResult r) mutable {
          a->strand->Post([this, a, written = std::move(written), st = std::move(r.status)] {
            OnPersisted(a->state, written, st, clock_->Now() + options_.write_retry);
            if (absl::IsAborted(st)) {  // fenced: another coordinator claimed it
              Drop(a);
              return;
            }
            if (absl::IsFailedPrecondition(st) || absl::IsNotFound(st)) {
              // Someone else decided (e.g. a ForceStop raced with us): the store wins.
              Retire(a, absl::AbortedError(absl::StrCat("transaction '", a->state.txn.gid,
                                                        "' changed concurrently: ", st.message())));
              return;
            }
            Drive(a);
          });
        });
  }
  // A call must end before our lease can: otherwise another replica could take the work
  // over while the branch is still being called on our behalf.
  absl::Duration margin = std::min(a->state.txn.options.request_timeout, options_.lease / 2);
  bool leased = a->owned && now + margin < a->lease_until();
  for (int i : d.calls) {
    if (stopping || !leased) {
      // Undo the dispatch: the call is made again after the restart or the lease renewal.
      a->state.rt[i].in_flight = false;
      a->state.txn.branches[i].attempts--;
      if (!stopping) a->starved = true;
      continue;
    }
    Dispatch(a, i);
  }
  if (d.answer_waiters) {
    SubmitResult r = ResultOf(a->state.txn);
    for (SubmitDone& w : a->submit_waiters) w(r);
    a->submit_waiters.clear();
  }
  if (d.done) {
    for (TxnDone& w : a->stop_waiters) w(a->state.txn);
    a->stop_waiters.clear();
    Retire(a, absl::OkStatus());
    return;
  }
  ArmTimer(a, stopping ? std::nullopt : d.wake);
}

void Engine::Retire(const ActivePtr& a, const absl::Status& why) {
  a->retired = true;
  if (a->timer) timers_->Cancel(*a->timer);
  a->timer.reset();
  for (SubmitDone& w : a->submit_waiters)
    w(why.ok() ? absl::StatusOr<SubmitResult>(ResultOf(a->state.txn)) : why);
  a->submit_waiters.clear();
  for (TxnDone& w : a->stop_waiters) w(why.ok() ? absl::StatusOr<Transaction>(a->state.txn) : why);
  a->stop_waiters.clear();
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  const std::string& gid = a->state.txn.gid;
  auto it = active_.find(gid);
  if (it != active_.end() && it->second == a) active_.erase(it);
  // Claims read before this point may still carry a non-terminal snapshot of `gid`.
  if (retired_.insert(gid).second) retired_order_.emplace_back(now, gid);
  while (!retired_order_.empty() && retired_order_.front().first < now - kRetiredMemory) {
    retired_.erase(retired_order_.front().second);
    retired_order_.pop_front();
  }
}

void Engine::ArmTimer(const ActivePtr& a, std::optional<absl::Time> wake) {
  if (a->timer && (!wake || *wake != a->timer_at)) {
    timers_->Cancel(*a->timer);
    a->timer.reset();
  }
  if (!wake || a->timer) return;
  a->timer_at = *wake;
  std::weak_ptr<Active> weak = a;
  a->timer = timers_->Schedule(*wake, [this, weak] {
    ActivePtr a = weak.lock();
    if (!a) return;
    a->strand->Post([this, a] {
      a->timer.reset();
      Drive(a);
    });
  });
}

void Engine::Dispatch(const ActivePtr& a, int index) {
  const Transaction& t = a->state.txn;
  const Branch& b = t.branches[index];
  auto on_result = [this, a, index](BranchResult r) {
    a->strand->Post([this, a, index, r = std::move(r)] {
      OnBranchResult(a->state, index, r, clock_->Now(), Jitter());
      LogIfStuck(a->state.txn, index, r);
      Drive(a);
    });
  };
  if (b.target.empty()) {  // an empty target is a no-op that succeeds
    on_result(BranchResult{CallOutcome::kSuccess, ""});
    return;
  }
  BranchCall call;
  call.target = b.target;
  call.payload = b.payload;
  call.timeout = t.options.request_timeout;
  call.metadata = Metadata(t, b.branch_id, BranchOpName(b.op));
  caller_->Call(std::move(call), std::move(on_result));
}

std::vector<std::pair<std::string, std::string>> Engine::Metadata(const Transaction& t,
                                                                  const std::string& branch_id,
                                                                  const char* op) const {
  std::vector<std::pair<std::string, std::string>> m = {
      {"dtm-gid", t.gid},
      {"dtm-trans_type", TransTypeName(t.trans_type)},
      {"dtm-branch_id", branch_id},
      {"dtm-op", op},
      {"dtm-dtm", self_address()}};
  for (const auto& [k, v] : t.options.branch_headers) m.emplace_back(k, v);
  return m;
}

void Engine::OnPreparedDue(Transaction txn) {
  absl::Time now = clock_->Now();
  absl::Time deadline = txn.create_time + txn.options.timeout_to_fail;
  if (txn.trans_type == TransType::kMsg) {
    BackCheck(std::move(txn));
    return;
  }
  if (txn.trans_type != TransType::kTcc) return;
  if (now < deadline) {  // claimed early (made due by hand): wait for the real timeout
    Postpone(txn, deadline);
    return;
  }
  std::string reason =
      absl::StrCat("timeout_to_fail of ", absl::FormatDuration(txn.options.timeout_to_fail),
                   " passed while PREPARED: the client neither submitted nor aborted it");
  std::string gid = txn.gid;
  LeavePrepared(txn, GlobalStatus::kAborting, reason, options_.owner,
                [gid](absl::Status st, ActivePtr) {
                  if (st.ok()) {
                    std::fprintf(stderr, "dtmd: tcc gid=%s timed out while PREPARED; aborting\n",
                                 gid.c_str());
                  }  // else its client decided meanwhile, or another replica took it over
                });
}

void Engine::BackCheck(Transaction txn) {
  absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
  }
  // As for branch calls: the check must end while the claim still holds.
  absl::Duration margin = std::min(txn.options.request_timeout, options_.lease / 2);
  if (txn.owner != options_.owner || now + margin >= txn.lease_expire) return;
  BranchCall call;
  call.target = txn.query_prepared;
  call.timeout = txn.options.request_timeout;
  call.metadata = Metadata(txn, "00", "msg");
  caller_->Call(std::move(call), [this, txn = std::move(txn)](BranchResult r) mutable {
    pool_->Post([this, txn = std::move(txn), r = std::move(r)] {
      const std::string& gid = txn.gid;
      int errors = 0;
      {
        absl::MutexLock lock(&mu_);
        if (r.outcome == CallOutcome::kError) {
          errors = ++back_check_errors_[gid];
        } else {
          back_check_errors_.erase(gid);
        }
      }
      absl::Time now = clock_->Now();
      const TransOptions& o = txn.options;
      switch (r.outcome) {
        case CallOutcome::kSuccess:
          std::fprintf(stderr, "dtmd: msg gid=%s back-check says committed; delivering\n",
                       gid.c_str());
          LeavePrepared(txn, GlobalStatus::kSubmitted, "", options_.owner,
                        [](absl::Status, ActivePtr) {});
          break;
        case CallOutcome::kFailure:
          LeavePrepared(txn, GlobalStatus::kFailed,
                        absl::StrCat("back-check ", txn.query_prepared,
                                     " says the local transaction rolled back: ", r.message),
                        options_.owner, [](absl::Status, ActivePtr) {});
          break;
        case CallOutcome::kOngoing:
          Postpone(txn, now + o.retry_interval);
          break;
        case CallOutcome::kError: {
          if (PowerOfTwo(errors)) {
            std::fprintf(stderr, "dtmd: back-check of msg gid=%s failed (%d in a row): %s\n",
                         gid.c_str(), errors, r.message.c_str());
          }
          BackoffPolicy backoff{o.retry_interval, o.max_retry_interval};
          Postpone(txn, now + backoff.Jittered(errors, Jitter()));
          break;
        }
      }
    });
  });
}

void Engine::Postpone(const Transaction& txn, absl::Time at) {
  UpdateOp op;
  op.gid = txn.gid;
  op.owner = options_.owner;
  op.expected_status = GlobalStatus::kPrepared;
  op.new_status = GlobalStatus::kPrepared;
  op.update_time = clock_->Now();
  op.next_retry_time = at;
  op.reassign = true;  // released: whoever is free when it is due claims it
  store_->Write(std::move(op), [](WriteResult) {});  // lost: re-claimed when the lease ends
}

void Engine::Shutdown() {
  std::vector<ActivePtr> all;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [gid, a] : active_) all.push_back(a);
  }
  for (const ActivePtr& a : all) {
    a->strand->Post([a] {
      // Still running: answer with the durable status; recovery finishes it after restart.
      SubmitResult r = ResultOf(a->state.txn);
      r.status = a->state.durable_status;
      for (SubmitDone& w : a->submit_waiters) w(r);
      a->submit_waiters.clear();
      for (TxnDone& w : a->stop_waiters) w(Unavailable("ForceStop"));
      a->stop_waiters.clear();
    });
  }
}

}  // namespace dtm
