// Metrics: dtmd's Prometheus metrics, kept in a prometheus-cpp registry and written in the
// text exposition format by prometheus-cpp's serializer (the HTTP server serves them at
// /metrics and at DTM's /api/metrics).
//
// Names follow Prometheus' conventions (dtm_*_total counters, *_seconds durations) and labels
// stay few: a trans type, a branch op, an outcome, an API method, a status code. A gid, a
// target or a client never becomes a label: each would make a series per transaction.
//
//   dtm_transactions_started_total{trans_type}            stored by this replica
//   dtm_transactions_finished_total{trans_type,status}    status: succeeded | failed
//   dtm_branch_calls_total{trans_type,op,outcome}         outcome: success | failure |
//                                                         ongoing | transient
//   dtm_branch_call_duration_seconds{trans_type,op}       histogram
//   dtm_back_checks_total{outcome}                        a prepared msg's query_prepared
//   dtm_store_commit_duration_seconds                     histogram, one per group commit
//   dtm_store_commit_batch_size                           histogram: writes per commit
//   dtm_transactions_pending{status}                      gauge: prepared | submitted |
//                                                         aborting, in the store (all replicas)
//   dtm_transactions_in_memory                            gauge: active in this replica
//   dtm_recovery_claimed_total                            transactions claimed from the store
//   dtm_lease_renewals_total, dtm_lease_losses_total      leases extended / lost
//   dtm_api_requests_total{api,method,code}               api: grpc | http
//   process_*                                             CPU, memory, file descriptors, start
//
// Thread-safe: every method may be called from any thread.
#ifndef DTM_SERVER_METRICS_METRICS_H_
#define DTM_SERVER_METRICS_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/model/transaction.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace dtm {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void TransactionStarted(TransType type);
  // `status` is SUCCEEDED or FAILED.
  void TransactionFinished(TransType type, GlobalStatus status);
  // `op` is a branch op's name ("action", ..., "msg" for a back-check is counted by
  // BackChecked instead); `outcome` one of "success", "failure", "ongoing", "transient".
  void BranchCalled(TransType type, absl::string_view op, absl::string_view outcome,
                    absl::Duration latency);
  void BackChecked(absl::string_view outcome);
  void StoreCommitted(absl::Duration latency, size_t batch_size);
  void RecoveryClaimed(int64_t count);
  void LeasesRenewed(int64_t count);
  void LeaseLost();
  // `code` is the gRPC code's name ("OK", "NOT_FOUND") or the HTTP status ("200").
  void ApiRequest(absl::string_view api, absl::string_view method, absl::string_view code);
  // Counts by status of the unfinished transactions in the store.
  void SetPending(const std::map<GlobalStatus, int64_t>& counts);
  void SetInMemory(int64_t count);
  // What waits inside the store (Store::backlog).
  void SetStoreBacklog(int64_t writes, int64_t completions);

  // Every metric in Prometheus' text format (version 0.0.4).
  std::string Serialize() const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
};

}  // namespace dtm

#endif  // DTM_SERVER_METRICS_METRICS_H_
