// Runner: the strand-driven half of the Engine. It owns the in-memory set of transactions
// active on this coordinator (SUBMITTED or ABORTING, owned here), serialises the events of
// each on its own Strand, and executes what the state machine decides: group-committed
// writes, asynchronous branch calls, timers, and the answers to the callers waiting for it.
// It also keeps leases: work whose lease another coordinator took over is dropped.
//
// The PREPARED half (prepared.h) hands transactions over to it once they leave PREPARED.
// Thread-safe. Every method returns at once; callbacks run later on a pool thread or a strand.
#ifndef DTM_SERVER_ENGINE_RUNNER_H_
#define DTM_SERVER_ENGINE_RUNNER_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/branch/branch_caller.h"
#include "server/engine/engine_types.h"
#include "server/engine/machine.h"
#include "server/runtime/clock.h"
#include "server/runtime/thread_pool.h"
#include "server/runtime/timer_queue.h"
#include "storage/store.h"

namespace dtm {

class Runner {
 public:
  struct Active;
  using ActivePtr = std::shared_ptr<Active>;

  Runner(const EngineOptions& options, Store* store, BranchCaller* caller, Clock* clock,
         TimerQueue* timers, ThreadPool* pool);
  ~Runner();

  // True once Shutdown began: nothing new starts.
  bool stopping() const;
  // The active entry of `gid`, or null.
  ActivePtr Find(const std::string& gid) const;
  // Returns the active entry for `txn`'s gid, making it active from `txn` if it is not yet.
  // Returns null for a stored snapshot (`recovered`) of a gid that ended here recently: the
  // snapshot may predate its end, and running it again could call a branch after it ended.
  // Nothing runs until Start or Attach.
  // `created`, if set, says whether this call made the entry (false: it was already there).
  ActivePtr Activate(Transaction txn, bool recovered, bool* created = nullptr);
  // Drives `a`: calls what is due, writes what changed, arms its timer.
  void Start(const ActivePtr& a);
  // Answers a Submit of the active `a` by a client who takes it for a `type`: at once with
  // its durable status, or (`wait`) once it ended or stalled. Drives `a`.
  void Attach(const ActivePtr& a, TransType type, bool wait, SubmitDone done);
  // Answers a Submit of the existing `gid` with its current status: Attach if it is active
  // here, else from the store.
  void AnswerExisting(const std::string& gid, TransType type, bool wait, SubmitDone done);
  // Runs `fn` on a's strand with a's transaction as a reader may rely on it: the durable
  // global status (a status whose write is in flight is not reported yet), the latest
  // branch results.
  void WithDurableView(const ActivePtr& a, std::function<void(const Transaction&)> fn);
  // A call of `t`'s branch `branch_id` at `target` for `op` (the payload left to the caller).
  BranchCall NewCall(const Transaction& t, const std::string& branch_id, const char* op,
                     const std::string& target) const;

  // The Engine's operations on running work (see engine.h).
  void Query(const std::string& gid, TxnDone done);
  void ForceStop(const std::string& gid, const std::string& reason, const TxnDone& done);
  void RetryNow(const std::string& gid, StatusDone done);
  void RetryAllWaiting(std::function<void(absl::StatusOr<int64_t>)> done);
  // Continues a claimed SUBMITTED or ABORTING transaction.
  bool Resume(Transaction txn);
  void RenewLeases();
  void Shutdown();

  void set_made_due_hook(std::function<void()> made_due);
  void set_self_address(std::string address);
  void set_http_self_address(std::string address);
  std::string self_address() const;
  size_t active_count() const;
  size_t resumed_count() const;

 private:
  // Runs `on_active` on the strand of the active entry for `gid`, loading it from the store
  // if needed; `on_stored` receives a terminal transaction or the lookup error instead.
  void WithActive(const std::string& gid, std::function<void(const ActivePtr&)> on_active,
                  TxnDone on_stored);
  // On a's strand. Every waiting branch becomes due now, a failed write is retried now.
  void MakeDue(const ActivePtr& a);
  // The store holds `stored_next`, earlier than what this coordinator last wrote: someone made
  // the transaction due early (RetryNow on another replica; a touch always moves the stored
  // time back, even while a call is being made). Makes it due here and takes the time as its
  // own, so that later renewals and writes do not act on the same touch again.
  void TakeTouch(const ActivePtr& a, absl::Time stored_next);
  void Drive(const ActivePtr& a);
  // On a's strand, after a decision: whether a can leave memory and wait in the store
  // (EngineOptions::park_after); Park makes it leave.
  bool Parkable(const Active& a, const Decision& d, absl::Time now) const;
  void Park(const ActivePtr& a);
  // Brings back the parked `gid` if this coordinator still owns it (after RetryNow made it
  // due in the store), so it does not wait for its lease to run out and a claim.
  void Unpark(const std::string& gid);
  // Tells recovery (Engine::set_made_due_hook) that work was made due in the store.
  void MadeDue();
  void Dispatch(const ActivePtr& a, int index);
  void ArmTimer(const ActivePtr& a, std::optional<absl::Time> wake);
  // On a's strand: answers a's Submit waiters with `submit` and its ForceStop waiters with
  // `stop`.
  static void AnswerWaiters(Active& a, const absl::StatusOr<SubmitResult>& submit,
                            const absl::StatusOr<Transaction>& stop);
  // On a's strand: a ended (or was taken from us, `why`). Forgets it and remembers the gid for
  // a while (see Activate).
  void Retire(const ActivePtr& a, const absl::Status& why);
  // Removes `a` from active_ (if it is still there).
  void EraseLocked(const ActivePtr& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On a's strand: this coordinator no longer owns a's transaction. Forgets it without
  // remembering it as ended, so a later claim can bring it back.
  void Drop(const ActivePtr& a);
  // On a's strand: `stored`, read from the store, shows a's transaction ended by someone else
  // (a ForceStop through another replica). Retires it with that end.
  void EndedElsewhere(const ActivePtr& a, const Transaction& stored);

  const EngineOptions options_;
  Store* const store_;
  BranchCaller* const caller_;
  Clock* const clock_;
  TimerQueue* const timers_;
  ThreadPool* const pool_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ActivePtr> active_ ABSL_GUARDED_BY(mu_);
  size_t resumed_ ABSL_GUARDED_BY(mu_) = 0;  // entries of active_ that Resume added
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string self_address_ ABSL_GUARDED_BY(mu_);
  std::string http_self_address_ ABSL_GUARDED_BY(mu_);
  std::function<void()> made_due_ ABSL_GUARDED_BY(mu_);
  // Gids retired in the last kRetiredMemory, oldest first (see Activate).
  std::deque<std::pair<absl::Time, std::string>> retired_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_RUNNER_H_
