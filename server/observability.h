// What dtmd exposes for operators beside its APIs: the Prometheus scrape endpoint on the HTTP
// port and the counting of API requests on both ports (server/metrics/metrics.h has the list
// of metrics).
#ifndef DTM_SERVER_OBSERVABILITY_H_
#define DTM_SERVER_OBSERVABILITY_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "server/engine/engine.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/runtime/executor.h"
#include "storage/store.h"

namespace dtm {

// Counts every gRPC call into dtm_api_requests_total{api="grpc",method,code}. The method label
// is the full method name for the services dtmd serves, and "other" for any other name a
// client sends (an unimplemented method must not make a series of its own).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewApiMetricsInterceptor(
    Metrics* metrics);

// Counts every HTTP answer into dtm_api_requests_total{api="http",method=<route>,code}.
void CountHttpRequests(HttpRouter* router, Metrics* metrics);

// Serves the metrics at GET /metrics and at DTM's GET /api/metrics, in Prometheus' text format.
// Unauthenticated, like DTM's: the metrics hold counts only, never a gid, a payload or a
// target. A scrape refreshes the pending gauge from the store on `executor` (a count of the
// unfinished rows), at most once per `min_refresh` and never two at once; a scrape that comes
// meanwhile answers with the last counts.
class MetricsEndpoint {
 public:
  MetricsEndpoint(Metrics* metrics, Store* store, Engine* engine, Executor* executor,
                  absl::Duration min_refresh = absl::Seconds(10));
  void Register(HttpRouter* router);

 private:
  void Scrape(HttpResponder respond);

  Metrics* const metrics_;
  Store* const store_;
  Engine* const engine_;
  Executor* const executor_;
  const absl::Duration min_refresh_;
  absl::Mutex mu_;
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time refreshed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace dtm

#endif  // DTM_SERVER_OBSERVABILITY_H_
