#include "server/metrics/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace dtm {

namespace {

std::string Lower(absl::string_view s) { return absl::AsciiStrToLower(s); }

// The standard process_* metrics of Prometheus' client libraries, from /proc/self: what the
// Go and Python clients export, so dashboards written for them work.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector() {
    long ticks = sysconf(_SC_CLK_TCK);
    ticks_ = ticks > 0 ? static_cast<double>(ticks) : 100.0;
    long page = sysconf(_SC_PAGESIZE);
    page_ = page > 0 ? static_cast<double>(page) : 4096.0;
    // Boot time plus the process' start in ticks since boot.
    std::ifstream stat("/proc/stat");
    std::string key;
    double boot = 0;
    while (stat >> key) {
      if (key == "btime") {
        stat >> boot;
        break;
      }
    }
    std::vector<std::string> f = SelfStat();
    if (f.size() > 21) start_ = boot + Number(f[21]) / ticks_;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    std::vector<std::string> f = SelfStat();
    if (f.size() > 23) {
      // Fields (man 5 proc), counted from 0 after the command: utime 13, stime 14,
      // num_threads 19, vsize 22, rss 23 (pages).
      double cpu = (Number(f[13]) + Number(f[14])) / ticks_;
      out.push_back(One("process_cpu_seconds_total", "User and system CPU time spent, seconds.",
                        prometheus::MetricType::Counter, cpu));
      out.push_back(One("process_virtual_memory_bytes", "Virtual memory size, bytes.",
                        prometheus::MetricType::Gauge, Number(f[22])));
      out.push_back(One("process_resident_memory_bytes", "Resident memory size, bytes.",
                        prometheus::MetricType::Gauge, Number(f[23]) * page_));
      out.push_back(One("process_threads", "Number of OS threads.", prometheus::MetricType::Gauge,
                        Number(f[19])));
    }
    out.push_back(One("process_start_time_seconds",
                      "Start time of the process since the Unix epoch, seconds.",
                      prometheus::MetricType::Gauge, start_));
    out.push_back(One("process_open_fds", "Number of open file descriptors.",
                      prometheus::MetricType::Gauge, OpenFds()));
    return out;
  }

 private:
  // /proc/self/stat's fields after "(comm)", which may itself hold spaces and parentheses;
  // index 0 is the state (field 3 in man 5 proc).
  static std::vector<std::string> SelfStat() {
    std::ifstream in("/proc/self/stat");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    size_t close = s.rfind(')');
    if (close == std::string::npos || close + 2 > s.size()) return {};
    std::vector<std::string> f = absl::StrSplit(s.substr(close + 2), ' ', absl::SkipWhitespace());
    // Re-index so that f[k] is field k+1 of man 5 proc, counted from pid = 1: prepend pid
    // and comm placeholders.
    f.insert(f.begin(), {"pid", "comm"});
    // Now f[0] is pid (field 1), f[13] utime (14), f[14] stime (15), f[19] num_threads (20),
    // f[21] starttime (22), f[22] vsize (23), f[23] rss (24).
    return f;
  }

  // A /proc field as a number; 0 if it is not one (never throws).
  static double Number(const std::string& s) {
    double v = 0;
    return absl::SimpleAtod(s, &v) ? v : 0;
  }

  static double OpenFds() {
    double n = 0;
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (readdir(d) != nullptr) ++n;
    closedir(d);
    return n - 3;  // ".", ".." and the directory's own descriptor
  }

  static prometheus::MetricFamily One(const char* name, const char* help,
                                      prometheus::MetricType type, double value) {
    prometheus::MetricFamily fam;
    fam.name = name;
    fam.help = help;
    fam.type = type;
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    fam.metric.push_back(m);
    return fam;
  }

  double ticks_ = 100;
  double page_ = 4096;
  double start_ = 0;
};

const prometheus::Histogram::BucketBoundaries& CallBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *b;
}

const prometheus::Histogram::BucketBoundaries& CommitBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1};
  return *b;
}

const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b =
      new prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return *b;
}

}  // namespace

struct Metrics::Families {
  ProcessCollector process;  // reads its boot and start times once

  explicit Families(prometheus::Registry& r)
      : started(prometheus::BuildCounter()
                    .Name("dtm_transactions_started_total")
                    .Help("Global transactions stored by this replica, by trans type.")
                    .Register(r)),
        finished(prometheus::BuildCounter()
                     .Name("dtm_transactions_finished_total")
                     .Help("Global transactions this replica ended, by trans type and status.")
                     .Register(r)),
        branch_calls(prometheus::BuildCounter()
                         .Name("dtm_branch_calls_total")
                         .Help("Branch calls by trans type, op and outcome.")
                         .Register(r)),
        branch_latency(prometheus::BuildHistogram()
                           .Name("dtm_branch_call_duration_seconds")
                           .Help("Time from a branch call to its answer, seconds.")
                           .Register(r)),
        back_checks(prometheus::BuildCounter()
                        .Name("dtm_back_checks_total")
                        .Help("Back-checks (query_prepared) of prepared msgs, by outcome.")
                        .Register(r)),
        commit_latency(prometheus::BuildHistogram()
                           .Name("dtm_store_commit_duration_seconds")
                           .Help("Time to apply and commit one group of writes, seconds.")
                           .Register(r)),
        commit_batch(prometheus::BuildHistogram()
                         .Name("dtm_store_commit_batch_size")
                         .Help("Writes committed together in one store transaction.")
                         .Register(r)),
        pending(prometheus::BuildGauge()
                    .Name("dtm_transactions_pending")
                    .Help("Unfinished transactions in the store (every replica's), by status.")
                    .Register(r)),
        in_memory(prometheus::BuildGauge()
                      .Name("dtm_transactions_in_memory")
                      .Help("Transactions this replica is working on in memory.")
                      .Register(r)
                      .Add({})),
        queued(prometheus::BuildGauge()
                   .Name("dtm_store_queue_length")
                   .Help("What waits inside the store now: writes not yet taken into a commit "
                         "(stage=commit), finished writes (committed or failed) whose next step "
                         "has not run yet (stage=completion).")
                   .Register(r)),
        queued_writes(queued.Add({{"stage", "commit"}})),
        queued_completions(queued.Add({{"stage", "completion"}})),
        claimed(prometheus::BuildCounter()
                    .Name("dtm_recovery_claimed_total")
                    .Help("Transactions recovery claimed from the store to continue them.")
                    .Register(r)
                    .Add({})),
        renewals(prometheus::BuildCounter()
                     .Name("dtm_lease_renewals_total")
                     .Help("Leases on transactions extended by this replica.")
                     .Register(r)
                     .Add({})),
        losses(prometheus::BuildCounter()
                   .Name("dtm_lease_losses_total")
                   .Help("Transactions this replica dropped because its lease was lost.")
                   .Register(r)
                   .Add({})),
        api(prometheus::BuildCounter()
                .Name("dtm_api_requests_total")
                .Help("Requests to dtmd's gRPC and HTTP APIs, by method and answer code.")
                .Register(r)),
        commit_latency_series(commit_latency.Add({}, CommitBuckets())),
        commit_batch_series(commit_batch.Add({}, BatchBuckets())) {
    for (TransType t : {TransType::kSaga, TransType::kTcc, TransType::kMsg, TransType::kXa}) {
      started.Add({{"trans_type", Lower(TransTypeName(t))}});
    }
    for (GlobalStatus s :
         {GlobalStatus::kPrepared, GlobalStatus::kSubmitted, GlobalStatus::kAborting}) {
      pending.Add({{"status", Lower(GlobalStatusName(s))}});
    }
  }

  prometheus::Family<prometheus::Counter>& started;
  prometheus::Family<prometheus::Counter>& finished;
  prometheus::Family<prometheus::Counter>& branch_calls;
  prometheus::Family<prometheus::Histogram>& branch_latency;
  prometheus::Family<prometheus::Counter>& back_checks;
  prometheus::Family<prometheus::Histogram>& commit_latency;
  prometheus::Family<prometheus::Histogram>& commit_batch;
  prometheus::Family<prometheus::Gauge>& pending;
  prometheus::Gauge& in_memory;
  prometheus::Family<prometheus::Gauge>& queued;
  prometheus::Gauge& queued_writes;
  prometheus::Gauge& queued_completions;
  prometheus::Counter& claimed;
  prometheus::Counter& renewals;
  prometheus::Counter& losses;
  prometheus::Family<prometheus::Counter>& api;
  prometheus::Histogram& commit_latency_series;
  prometheus::Histogram& commit_batch_series;
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      f_(std::make_unique<Families>(*registry_)) {}

Metrics::~Metrics() = default;

void Metrics::TransactionStarted(TransType type) {
  f_->started.Add({{"trans_type", Lower(TransTypeName(type))}}).Increment();
}

void Metrics::TransactionFinished(TransType type, GlobalStatus status) {
  f_->finished
      .Add(
          {{"trans_type", Lower(TransTypeName(type))}, {"status", Lower(GlobalStatusName(status))}})
      .Increment();
}

void Metrics::BranchCalled(TransType type, absl::string_view op, absl::string_view outcome,
                           absl::Duration latency) {
  std::string t = Lower(TransTypeName(type));
  f_->branch_calls
      .Add({{"trans_type", t}, {"op", std::string(op)}, {"outcome", std::string(outcome)}})
      .Increment();
  f_->branch_latency.Add({{"trans_type", t}, {"op", std::string(op)}}, CallBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::BackChecked(absl::string_view outcome) {
  f_->back_checks.Add({{"outcome", std::string(outcome)}}).Increment();
}

void Metrics::StoreCommitted(absl::Duration latency, size_t batch_size) {
  f_->commit_latency_series.Observe(absl::ToDoubleSeconds(latency));
  f_->commit_batch_series.Observe(static_cast<double>(batch_size));
}

void Metrics::RecoveryClaimed(int64_t count) {
  if (count > 0) f_->claimed.Increment(static_cast<double>(count));
}

void Metrics::LeasesRenewed(int64_t count) {
  if (count > 0) f_->renewals.Increment(static_cast<double>(count));
}

void Metrics::LeaseLost() { f_->losses.Increment(); }

void Metrics::ApiRequest(absl::string_view api, absl::string_view method, absl::string_view code) {
  f_->api
      .Add(
          {{"api", std::string(api)}, {"method", std::string(method)}, {"code", std::string(code)}})
      .Increment();
}

void Metrics::SetPending(const std::map<GlobalStatus, int64_t>& counts) {
  for (GlobalStatus s :
       {GlobalStatus::kPrepared, GlobalStatus::kSubmitted, GlobalStatus::kAborting}) {
    auto it = counts.find(s);
    f_->pending.Add({{"status", Lower(GlobalStatusName(s))}})
        .Set(it == counts.end() ? 0.0 : static_cast<double>(it->second));
  }
}

void Metrics::SetInMemory(int64_t count) { f_->in_memory.Set(static_cast<double>(count)); }

void Metrics::SetStoreBacklog(int64_t writes, int64_t completions) {
  f_->queued_writes.Set(static_cast<double>(writes));
  f_->queued_completions.Set(static_cast<double>(completions));
}

std::string Metrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<prometheus::MetricFamily> process = f_->process.Collect();
  families.insert(families.end(), process.begin(), process.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace dtm
