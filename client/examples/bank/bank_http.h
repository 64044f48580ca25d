// BankHttp: the example bank's HTTP face, DTM's HTTP branch protocol for the same legs as its
// gRPC service: POST /api/TransOut (TransOutCompensate, TransIn, ..., TransInCancel) with a
// JSON TransferRequest ({"user_id": "alice", "amount": 3000}) and DTM's parameters in the query
// string; GET /api/QueryPrepared. Answers as DTM's services do: 200 {"dtm_result":"SUCCESS"},
// 409 FAILURE (the bank refuses), 425 ONGOING, 400 for a bad request, 503 otherwise. Every leg
// goes through the same BankService (faults, barrier) as a gRPC call.
//
// A leg waits on PostgreSQL, so each call runs on a thread of its own, as on a synchronous
// gRPC server; the server's I/O threads never wait.
#ifndef DTM_CLIENT_EXAMPLES_BANK_BANK_HTTP_H_
#define DTM_CLIENT_EXAMPLES_BANK_BANK_HTTP_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/examples/bank/bank_service.h"
#include "server/http/http_server.h"

namespace bank {

class BankHttp {
 public:
  // Serves `service` (which must outlive this) on `listen`, e.g. "127.0.0.1:0".
  static absl::StatusOr<std::unique_ptr<BankHttp>> Start(BankService* service,
                                                         const std::string& listen);
  ~BankHttp();  // Stops serving and waits for the calls in flight.

  int port() const { return server_->port(); }
  // "http://<listen host>:port/api/<method>": a branch target (127.0.0.1 for a wildcard).
  std::string Target(const char* method) const;

 private:
  explicit BankHttp(BankService* service) : service_(service) {}
  void Serve(dtm::HttpRequest req, dtm::HttpResponder respond, const char* method);

  BankService* const service_;
  dtm::HttpRouter router_;
  std::unique_ptr<dtm::HttpServer> server_;
  std::string host_;  // what Target() names
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bank

#endif  // DTM_CLIENT_EXAMPLES_BANK_BANK_HTTP_H_
