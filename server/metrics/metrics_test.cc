#include "server/metrics/metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, CountsWithLowCardinalityLabels) {
  Metrics m;
  m.TransactionStarted(TransType::kSaga);
  m.TransactionStarted(TransType::kSaga);
  m.TransactionFinished(TransType::kSaga, GlobalStatus::kFailed);
  m.BranchCalled(TransType::kSaga, "action", "failure", absl::Milliseconds(3));
  m.BranchCalled(TransType::kSaga, "action", "success", absl::Milliseconds(30));
  m.BackChecked("ongoing");
  m.ApiRequest("grpc", "/dtm.v1.Coordinator/Submit", "OK");
  m.RecoveryClaimed(5);
  m.LeasesRenewed(0);
  m.LeaseLost();
  m.SetPending({{GlobalStatus::kSubmitted, 7}});
  m.SetInMemory(3);
  m.SetStoreBacklog(4, 2);
  m.StoreCommitted(absl::Microseconds(1500), 12);
  std::string text = m.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE dtm_transactions_started_total counter"));
  EXPECT_THAT(text, HasSubstr("dtm_transactions_started_total{trans_type=\"saga\"} 2"));
  EXPECT_THAT(text, HasSubstr("dtm_transactions_started_total{trans_type=\"tcc\"} 0"));
  EXPECT_THAT(
      text, HasSubstr("dtm_transactions_finished_total{status=\"failed\",trans_type=\"saga\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_branch_calls_total{op=\"action\",outcome=\"failure\","
                              "trans_type=\"saga\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_branch_call_duration_seconds_count{op=\"action\","
                              "trans_type=\"saga\"} 2"));
  EXPECT_THAT(text, HasSubstr("dtm_branch_call_duration_seconds_bucket{op=\"action\","
                              "trans_type=\"saga\",le=\"0.005\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_back_checks_total{outcome=\"ongoing\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_api_requests_total{api=\"grpc\",code=\"OK\","
                              "method=\"/dtm.v1.Coordinator/Submit\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_recovery_claimed_total 5"));
  EXPECT_THAT(text, HasSubstr("dtm_lease_renewals_total 0"));
  EXPECT_THAT(text, HasSubstr("dtm_lease_losses_total 1"));
  EXPECT_THAT(text, HasSubstr("dtm_transactions_pending{status=\"submitted\"} 7"));
  EXPECT_THAT(text, HasSubstr("dtm_transactions_pending{status=\"aborting\"} 0"));
  EXPECT_THAT(text, HasSubstr("dtm_transactions_in_memory 3"));
  EXPECT_THAT(text, HasSubstr("dtm_store_queue_length{stage=\"commit\"} 4"));
  EXPECT_THAT(text, HasSubstr("dtm_store_queue_length{stage=\"completion\"} 2"));
  EXPECT_THAT(text, HasSubstr("dtm_store_commit_batch_size_bucket{le=\"16\"} 1"));
  EXPECT_THAT(text, HasSubstr("dtm_store_commit_batch_size_bucket{le=\"8\"} 0"));
  EXPECT_THAT(text, HasSubstr("dtm_store_commit_duration_seconds_count 1"));
  EXPECT_THAT(text, Not(HasSubstr("gid")));
}

TEST(MetricsTest, ProcessMetricsAreThere) {
  Metrics m;
  std::string text = m.Serialize();
  for (const char* name :
       {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
        "process_start_time_seconds ", "process_virtual_memory_bytes ", "process_threads "}) {
    EXPECT_THAT(text, HasSubstr(std::string("\n") + name)) << name;
  }
  EXPECT_THAT(text, Not(HasSubstr("process_resident_memory_bytes 0\n")));
}

}  // namespace
}  // namespace dtm
