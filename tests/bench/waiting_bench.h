// dtm-bench's modes about transactions that wait: many sagas left SUBMITTED, each waiting for a
// retry hours away because its first branch answered ONGOING.
//
// pending: how dtmd's memory (VmRSS) grows with the number of waiting transactions, beside the
// idle process's, and how fast they are submitted.
//
// recovery: after a kill -9 and a restart on the same store, how fast dtmd resumes them all
// once RetryNow(all_waiting) made them due, beside the rate at which they were first created.
#ifndef DTM_TESTS_BENCH_WAITING_BENCH_H_
#define DTM_TESTS_BENCH_WAITING_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace dtm::bench {

struct WaitingOptions {
  std::string store;  // dtmd's --store; empty: a fresh SQLite file
  int64_t count = 0;  // waiting transactions to create
  int clients = 32;   // concurrent submitters
  std::string payload;
  // Each saga's retry_interval: long enough that no retry comes during the run.
  absl::Duration retry_interval = absl::Hours(6);
  // recovery: dtmd's --lease for both processes, so that the killed process's leases run out
  // soon; zero: dtmd's default.
  absl::Duration lease = absl::ZeroDuration();
  // recovery: how long the resumed calls may take to arrive before the run gives up.
  absl::Duration resume_timeout = absl::Minutes(2);
};

// The modes; each returns the process exit code.
int RunPending(const WaitingOptions& options);
int RunRecovery(const WaitingOptions& options);

}  // namespace dtm::bench

#endif  // DTM_TESTS_BENCH_WAITING_BENCH_H_
