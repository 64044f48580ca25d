#include "server/observability.h"

#include <google/protobuf/descriptor.h>

#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/runtime/log.h"

namespace dtm {

namespace {

// The gRPC code's name as in grpc/status.h ("OK", "NOT_FOUND", ...).
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// "/package.Service/Method" of every method of the services dtmd serves.
std::set<std::string> ServedMethods() {
  std::set<std::string> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"dtm.v1.Coordinator", "dtmgimp.Dtm"}) {
    const google::protobuf::ServiceDescriptor* s = pool->FindServiceByName(name);
    if (s == nullptr) continue;
    for (int i = 0; i < s->method_count(); ++i) {
      out.insert(absl::StrCat("/", s->full_name(), "/", s->method(i)->name()));
    }
  }
  out.insert("/grpc.health.v1.Health/Check");
  out.insert("/grpc.health.v1.Health/Watch");
  out.insert("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  return out;
}

class ApiMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  ApiMetricsInterceptor(std::string method, Metrics* metrics)
      : method_(std::move(method)), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->ApiRequest("grpc", method_, CodeName(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  Metrics* const metrics_;
};

class ApiMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ApiMetricsFactory(Metrics* metrics) : metrics_(metrics), served_(ServedMethods()) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string method = info->method() != nullptr ? info->method() : "";
    if (served_.count(method) == 0) method = "other";
    return new ApiMetricsInterceptor(std::move(method), metrics_);  // gRPC owns it
  }

 private:
  Metrics* const metrics_;
  const std::set<std::string> served_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewApiMetricsInterceptor(
    Metrics* metrics) {
  return std::make_unique<ApiMetricsFactory>(metrics);
}

void CountHttpRequests(HttpRouter* router, Metrics* metrics) {
  router->set_observer([metrics](const std::string& route, int status) {
    metrics->ApiRequest("http", route, absl::StrCat(status));
  });
}

MetricsEndpoint::MetricsEndpoint(Metrics* metrics, Store* store, Engine* engine, Executor* executor,
                                 absl::Duration min_refresh)
    : metrics_(metrics),
      store_(store),
      engine_(engine),
      executor_(executor),
      min_refresh_(min_refresh) {}

void MetricsEndpoint::Register(HttpRouter* router) {
  for (const char* path : {"/metrics", "/api/metrics"}) {
    router->Handle("GET", path, [this](const HttpRequest&, HttpResponder respond) {
      Scrape(std::move(respond));
    });
  }
}

void MetricsEndpoint::Scrape(HttpResponder respond) {
  bool refresh = false;
  {
    absl::MutexLock lock(&mu_);
    if (!refreshing_ && absl::Now() - refreshed_ >= min_refresh_) {
      refreshing_ = true;
      refresh = true;
    }
  }
  // Off the HTTP server's I/O thread: the count reads the store.
  executor_->Post([this, refresh, respond = std::move(respond)] {
    if (refresh) {
      absl::StatusOr<std::map<GlobalStatus, int64_t>> counts = store_->CountUnfinished();
      if (counts.ok()) {
        metrics_->SetPending(*counts);
      } else {
        Log(LogLevel::kWarning, "metrics: pending count failed")
            .Field("error", counts.status().ToString());
      }
      absl::MutexLock lock(&mu_);
      refreshing_ = false;
      refreshed_ = absl::Now();
    }
    metrics_->SetInMemory(static_cast<int64_t>(engine_->active_count()));
    const Store::Backlog backlog = store_->backlog();
    metrics_->SetStoreBacklog(backlog.writes, backlog.completions);
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->Serialize();
    respond(std::move(r));
  });
}

}  // namespace dtm
