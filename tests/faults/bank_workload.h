// The bank invariant workload, shared by the invariant test (dtmd killed with kill -9 as it
// runs) and `dtm-faultload` (the same traffic while a test breaks the infrastructure under
// dtmd: database failover, network faults, failing disks, clock jumps).
//
// Two example banks (gRPC and HTTP branch endpoints behind the branch barrier, ledgers in
// PostgreSQL) served in this process, and client threads submitting random transfers between
// their accounts with every transaction kind: saga (gRPC, HTTP, mixed), TCC, two-phase
// messages (also with clients that "crash" before or after their local commit), XA (also with
// clients that vanish between the phases). The banks can misbehave on purpose (refusals,
// transient errors, ONGOING, answers lost after the work committed, duplicate and late
// deliveries, a stalled XA phase 1). Run() then waits until every transaction dtmd knows of is
// terminal and audits the ledgers: money neither created nor destroyed, no balance negative,
// every succeeded transfer applied exactly once and every failed one not at all, nothing left
// frozen, no XA branch left PREPARED.
#ifndef DTM_TESTS_FAULTS_BANK_WORKLOAD_H_
#define DTM_TESTS_FAULTS_BANK_WORKLOAD_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/examples/bank/bank_service.h"

namespace dtm::faults {

// Each bank has kAccountsPerBank accounts opened with kInitialBalance; transfers move up to
// 3,000, so some are refused for want of money.
inline constexpr int kAccountsPerBank = 4;
inline constexpr int64_t kInitialBalance = 5000;

// The kinds of transfer.
enum class Mode {
  kSaga,
  kTcc,
  kMsg,
  kHttpSaga,   // both legs over HTTP
  kMixedSaga,  // TransOut over gRPC, TransIn over HTTP
  kXa,
  kMsgCrashAfterCommit,
  kMsgCrashBeforeCommit,
  kXaClientVanishes,  // both legs prepared, then neither Submit nor Abort
};
inline constexpr int kModeCount = 9;
// The modes where a transfer may succeed or fail (the first ones of Mode).
inline constexpr int kModesWithBothOutcomes = 6;
const char* ModeName(Mode m);

// The faults the banks inject, by bank::Fault.
inline constexpr int kFaultCount = 8;
const char* FaultName(bank::Fault f);

struct WorkloadOptions {
  // dtmd's gRPC addresses; client thread i uses coordinators[i % size]. The banks register XA
  // branches through the first.
  std::vector<std::string> coordinators;
  // A PostgreSQL database of its own for the banks' ledgers (CreateBankDatabase).
  std::string bank_conninfo;
  // Where the banks listen, and the host their branch targets name.
  std::string listen_host = "127.0.0.1";
  // Submitting stops after `transfers`, or after `duration` when that is not zero.
  int transfers = 2000;
  absl::Duration duration = absl::ZeroDuration();
  int threads = 8;
  uint64_t seed = 1;
  bool bank_faults = true;
  // The modes to draw from (indexed by Mode); at least one.
  std::array<bool, kModeCount> modes = {true, true, true, true, true, true, true, true, true};
  // Transaction options sent to dtmd.
  absl::Duration request_timeout = absl::Seconds(3);
  absl::Duration retry_interval = absl::Milliseconds(100);
  absl::Duration max_retry_interval = absl::Seconds(1);
  absl::Duration timeout_to_fail = absl::Seconds(2);
  // How long Run() waits for every transaction to become terminal.
  absl::Duration settle = absl::Seconds(180);
  // Prints one progress line per second while submitting.
  bool progress = false;
};

// Client calls by outcome, as the submitting clients saw them.
struct CallCounts {
  int64_t ok = 0, aborted = 0, unavailable = 0, other = 0;
};

struct WorkloadReport {
  int transfers = 0;  // started
  absl::Duration submit_time, settle_time;
  CallCounts calls;
  // By mode: succeeded, failed, unknown to dtmd (never reached it).
  std::array<std::array<int64_t, 3>, kModeCount> outcome{};
  std::array<int64_t, kFaultCount> faults{};  // injected, by bank::Fault
  bank::BankService::Stats barrier;           // both banks summed
  int64_t ledger_rows = 0;
  int64_t total_balance = 0, expected_total = 0;
  std::string balances;
  // Whatever broke the invariant, one line each; empty when it held.
  std::vector<std::string> violations;
  // Transactions still not terminal when the settle time ran out (a violation too).
  int64_t not_terminal = 0;

  int64_t succeeded() const;
  int64_t failed() const;
  int64_t unknown() const;
  // Human-readable lines, each starting with `prefix`.
  std::string Summary(const std::string& prefix) const;
  // One JSON object with the figures (for scripts).
  std::string Json() const;
};

// Creates database `name` (dropped first if it exists) through `base` (a libpq conninfo with
// the right to create databases), with the banks' tables and accounts; returns its conninfo.
absl::StatusOr<std::string> CreateBankDatabase(const std::string& base, const std::string& name);
// Drops database `name` through `base`.
absl::Status DropBankDatabase(const std::string& base, const std::string& name);

class BankWorkload {
 public:
  // Starts the banks; INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<BankWorkload>> Create(const WorkloadOptions& options);
  ~BankWorkload();
  BankWorkload(const BankWorkload&) = delete;
  BankWorkload& operator=(const BankWorkload&) = delete;

  // Submits, settles and audits; call once.
  WorkloadReport Run();

  // Transfers handed to a client so far (a fault injector can pace itself on it).
  int started() const { return next_.load(); }
  // True once the clients stopped submitting.
  bool submitting_done() const { return submitting_done_.load(); }

 private:
  struct Impl;
  explicit BankWorkload(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<int> next_{0};
  std::atomic<bool> submitting_done_{false};
};

}  // namespace dtm::faults

#endif  // DTM_TESTS_FAULTS_BANK_WORKLOAD_H_
