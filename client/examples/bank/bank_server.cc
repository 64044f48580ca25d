// bank-server: one bank of the example, a gRPC branch service (bank.v1.Bank) keeping its
// accounts in PostgreSQL schema --schema, every transfer leg behind the branch barrier. Its
// XA legs register with the coordinator at --dtm (the one configured here, never an address
// a caller names in its metadata).
//
//   bank-server --port=50061 --schema=bank_a --accounts=alice:10000
//   bank-server --port=50062 --schema=bank_b --accounts=bob:10000
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/examples/bank/bank_http.h"
#include "client/examples/bank/bank_service.h"

ABSL_FLAG(int, port, 50061, "gRPC port (0.0.0.0)");
ABSL_FLAG(int, http_port, -1,
          "also serve the legs over DTM's HTTP branch protocol on this port (127.0.0.1; 0 picks "
          "one; -1: no HTTP)");
ABSL_FLAG(std::string, db, "host=/tmp/dtm-bank-pg port=5432 user=postgres dbname=postgres",
          "libpq conninfo of the bank's PostgreSQL database");
ABSL_FLAG(std::string, dtm, "127.0.0.1:36790",
          "dtmd address the XA legs register their branches with");
ABSL_FLAG(std::string, schema, "bank_a", "schema holding this bank's tables");
ABSL_FLAG(std::string, accounts, "",
          "accounts to open when missing, user:balance[,user:balance...] (balance in cents)");

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "bank-server: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("an example bank: gRPC branch service over PostgreSQL");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<bank::BankStore> store = bank::BankStore::ForSchema(absl::GetFlag(FLAGS_schema));
  if (!store.ok()) return Fail(absl::StrCat("--schema: ", store.status().message()));
  std::unique_ptr<dtm::CoordinatorClient> coordinator =
      dtm::CoordinatorClient::Connect(absl::GetFlag(FLAGS_dtm), absl::Seconds(5));
  bank::BankService service(*store, absl::GetFlag(FLAGS_db), nullptr, coordinator.get());
  {
    absl::StatusOr<bank::ConnPool::Lease> conn = service.pool().Acquire();
    if (!conn.ok()) return Fail(absl::StrCat("--db: ", conn.status().message()));
    absl::Status created = store->CreateTables(conn->get());
    if (!created.ok()) return Fail(std::string(created.message()));
    for (absl::string_view entry :
         absl::StrSplit(absl::GetFlag(FLAGS_accounts), ',', absl::SkipEmpty())) {
      std::vector<std::string> parts = absl::StrSplit(entry, ':');
      int64_t balance = 0;
      if (parts.size() != 2 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &balance) ||
          balance < 0) {
        return Fail(absl::StrCat("--accounts: entry \"", entry,
                                 "\" is not user:balance with a balance >= 0"));
      }
      absl::Status opened = store->OpenAccount(conn->get(), parts[0], balance);
      if (!opened.ok()) return Fail(std::string(opened.message()));
    }
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat("0.0.0.0:", absl::GetFlag(FLAGS_port)),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return Fail(absl::StrCat("cannot listen on port ", absl::GetFlag(FLAGS_port)));
  }
  std::fprintf(stderr, "bank-server: bank %s serving bank.v1.Bank on port %d\n",
               store->schema().c_str(), port);
  std::unique_ptr<bank::BankHttp> http;
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    auto started =
        bank::BankHttp::Start(&service, absl::StrCat("127.0.0.1:", absl::GetFlag(FLAGS_http_port)));
    if (!started.ok()) return Fail(std::string(started.status().message()));
    http = *std::move(started);
    std::fprintf(stderr, "bank-server: bank %s serving HTTP legs at %s\n", store->schema().c_str(),
                 http->Target("<Method>").c_str());
  }
  server->Wait();
  return 0;
}
