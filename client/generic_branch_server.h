// GenericBranchServer: a gRPC server that hosts branch handlers by method name, without
// generated code. Every call arrives as its method, its dtm-* metadata and its raw payload
// bytes (the coordinator forwards a step's payload unchanged and never decodes it), and the
// handler answers with a status, the way the coordinator reads it (OK, ABORTED,
// FAILED_PRECONDITION, anything else). For scripts, demos and tests that need a branch
// service with whatever method names they like; a production service would rather implement
// its own generated service and read the metadata with BranchContext.
//
// Thread-safe. The handler runs on gRPC's threads, possibly for several calls at once.
#ifndef DTM_CLIENT_GENERIC_BRANCH_SERVER_H_
#define DTM_CLIENT_GENERIC_BRANCH_SERVER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/branch.h"

namespace dtm {

// One incoming branch call.
struct IncomingBranchCall {
  std::string method;  // "/test.Branch/A1"
  BranchContext branch;
  std::multimap<std::string, std::string> metadata;  // all of the client's metadata
  std::string payload;

  // The method's last path element: "/test.Branch/A1" -> "A1".
  std::string name() const;
};

struct BranchAnswer {
  grpc::Status status = grpc::Status::OK;
  // Never answer: the call ends (CANCELLED) only when its caller gives up or cancels it, as
  // a branch service that hangs would.
  bool hang = false;
  // The answer's message when status is OK (the coordinator reads none of it; empty is the
  // usual answer).
  std::string body{};
};

class GenericBranchServer {
 public:
  using Handler = std::function<BranchAnswer(const IncomingBranchCall&)>;

  // Serves `handler` on `listen` ("127.0.0.1:0" picks a free port).
  static absl::StatusOr<std::unique_ptr<GenericBranchServer>> Start(
      Handler handler, const std::string& listen = "127.0.0.1:0");
  ~GenericBranchServer();  // Calls Shutdown().

  // "host:port" it serves on, and "host:port/<service>/<name>", a target for a step.
  std::string address() const { return address_; }
  std::string Target(const std::string& name, const std::string& service = "test.Branch") const;
  // Stops at once: calls in flight, hanging ones included, are cancelled. Idempotent.
  void Shutdown();

 private:
  class Service;
  GenericBranchServer() = default;

  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace dtm

#endif  // DTM_CLIENT_GENERIC_BRANCH_SERVER_H_
