// dtmctl: inspect and steer a dtmd from a shell.
//
//   dtmctl [--dtm=host:port] [--json] <command> [arguments]
//     health                       is dtmd serving? (exit 0 if SERVING)
//     query <gid>                  one transaction with its branches
//     list [--status=S] [--type=T] [--gid_prefix=P] [--created_after=T] [--created_before=T]
//          [--limit=N] [--page_token=X] [--all]
//     force-stop <gid> [--reason=R]
//     retry-now <gid> | retry-now --all_waiting
//
// The address comes from --dtm, else $DTM_ADDRESS, else 127.0.0.1:36790. Exit codes: 0 done,
// 1 the coordinator refused or could not be reached (its message is printed), 2 bad usage.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/common/grpc_status.h"
#include "client/coordinator_client.h"

namespace {

std::string DefaultAddress() {
  const char* env = std::getenv("DTM_ADDRESS");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:36790";
}

std::string EnvOr(const char* name) {
  const char* env = std::getenv(name);
  return env != nullptr ? env : "";
}

}  // namespace

ABSL_FLAG(std::string, dtm, DefaultAddress(), "dtmd address host:port (env DTM_ADDRESS)");
ABSL_FLAG(std::string, token, EnvOr("DTM_TOKEN"),
          "bearer token for a dtmd with --auth_tokens_file (env DTM_TOKEN)");
ABSL_FLAG(bool, tls, !EnvOr("DTM_TLS_CA").empty(),
          "connect over TLS (implied by --tls_ca and --tls_cert)");
ABSL_FLAG(std::string, tls_ca, EnvOr("DTM_TLS_CA"),
          "PEM CAs dtmd's certificate is verified against; empty: the system's (env DTM_TLS_CA)");
ABSL_FLAG(std::string, tls_cert, EnvOr("DTM_TLS_CERT"),
          "PEM client certificate, for a dtmd with --tls_client_ca (env DTM_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, EnvOr("DTM_TLS_KEY"), "PEM key of --tls_cert (env DTM_TLS_KEY)");
ABSL_FLAG(bool, json, false, "print JSON (the API's messages) instead of tables");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "deadline of each call");
ABSL_FLAG(std::string, status, "", "list: only this status (PREPARED, SUBMITTED, ...)");
ABSL_FLAG(std::string, type, "", "list: only this trans type (SAGA, TCC, MSG, XA)");
ABSL_FLAG(std::string, gid_prefix, "", "list: only gids starting with this");
ABSL_FLAG(std::string, created_after, "", "list: created after this RFC 3339 time");
ABSL_FLAG(std::string, created_before, "", "list: created before this RFC 3339 time");
ABSL_FLAG(int, limit, 50, "list: page size (1..1000)");
ABSL_FLAG(std::string, page_token, "", "list: continue from a previous page");
ABSL_FLAG(bool, all, false, "list: follow next_page_token to the end");
ABSL_FLAG(std::string, reason, "", "force-stop: why (stored as rollback_reason)");
ABSL_FLAG(bool, all_waiting, false,
          "retry-now: every SUBMITTED or ABORTING transaction, waiting or being called");

namespace dtm {
namespace {

constexpr char kUsage[] =
    "dtmctl [--dtm=host:port] [--json] <command>\n"
    "  health | query <gid> | list [filters] | force-stop <gid> [--reason=R]\n"
    "  | retry-now <gid> | retry-now --all_waiting\n"
    "Run 'dtmctl --help' for every flag.";

int Usage(const std::string& why) {
  std::fprintf(stderr, "dtmctl: %s\nusage: %s\n", why.c_str(), kUsage);
  return 2;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "dtmctl: %s: %s\n", absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  absl::Time at = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3SZ", at, absl::UTCTimeZone());
}

std::string Name(v1::TransType t) { return v1::TransType_Name(t); }
std::string Name(v1::Status s) { return v1::Status_Name(s); }
std::string Name(v1::BranchOp op) { return v1::BranchOp_Name(op); }
std::string Name(v1::BranchStatus s) {
  std::string n = v1::BranchStatus_Name(s);
  return absl::StartsWith(n, "BRANCH_") ? n.substr(7) : n;
}

// Prints rows as columns padded to their widest cell.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += i + 1 < r.size() ? absl::StrFormat("%-*s  ", width[i], r[i]) : r[i];
    }
    std::printf("%s\n", line.c_str());
  }
}

void PrintTransaction(const v1::Transaction& t) {
  PrintTable({{"gid:", t.gid()},
              {"type:", Name(t.trans_type())},
              {"status:", Name(t.status())},
              {"created:", Time(t.create_time())},
              {"updated:", Time(t.update_time())},
              {"finished:", Time(t.finish_time())},
              {"next retry:", Time(t.next_retry_time())},
              {"rollback reason:", t.rollback_reason().empty() ? "-" : t.rollback_reason()},
              {"query_prepared:", t.query_prepared().empty() ? "-" : t.query_prepared()}});
  std::printf("\n");
  std::vector<std::vector<std::string>> rows = {
      {"BRANCH", "OP", "STATUS", "ATTEMPTS", "TARGET", "LAST ERROR"}};
  for (const v1::Branch& b : t.branches()) {
    rows.push_back({b.branch_id(), Name(b.op()), Name(b.status()), absl::StrCat(b.attempts()),
                    b.target().empty() ? "(no-op)" : b.target(),
                    b.last_error().empty() ? "-" : b.last_error()});
  }
  if (t.branches().empty()) rows.push_back({"(no branches)"});
  PrintTable(rows);
}

absl::Status ParseTime(const std::string& flag, const std::string& text,
                       google::protobuf::Timestamp* out) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", text, "' is not an RFC 3339 time (", err, ")"));
  }
  out->set_seconds(absl::ToUnixSeconds(t));
  out->set_nanos(
      static_cast<int32_t>((t - absl::FromUnixSeconds(out->seconds())) / absl::Nanoseconds(1)));
  return absl::OkStatus();
}

absl::StatusOr<v1::ListRequest> ListRequestFromFlags() {
  v1::ListRequest req;
  std::string status = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_status));
  if (!status.empty()) {
    v1::Status s;
    if (!v1::Status_Parse(status, &s) || s == v1::STATUS_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--status '", status, "' is not PREPARED, SUBMITTED, ABORTING, SUCCEEDED or FAILED"));
    }
    req.set_status(s);
  }
  std::string type = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_type));
  if (!type.empty()) {
    v1::TransType t;
    if (!v1::TransType_Parse(type, &t) || t == v1::TRANS_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("--type '", type, "' is not SAGA, TCC, MSG or XA"));
    }
    req.set_trans_type(t);
  }
  req.set_gid_prefix(absl::GetFlag(FLAGS_gid_prefix));
  if (!absl::GetFlag(FLAGS_created_after).empty()) {
    absl::Status s =
        ParseTime("created_after", absl::GetFlag(FLAGS_created_after), req.mutable_created_after());
    if (!s.ok()) return s;
  }
  if (!absl::GetFlag(FLAGS_created_before).empty()) {
    absl::Status s = ParseTime("created_before", absl::GetFlag(FLAGS_created_before),
                               req.mutable_created_before());
    if (!s.ok()) return s;
  }
  req.set_page_size(absl::GetFlag(FLAGS_limit));
  req.set_page_token(absl::GetFlag(FLAGS_page_token));
  return req;
}

int List(CoordinatorClient& client, bool json) {
  absl::StatusOr<v1::ListRequest> req = ListRequestFromFlags();
  if (!req.ok()) return Usage(std::string(req.status().message()));
  v1::ListResponse all;
  for (;;) {
    absl::StatusOr<v1::ListResponse> page = client.List(*req);
    if (!page.ok()) return Fail(page.status());
    all.mutable_transactions()->MergeFrom(page->transactions());
    all.set_next_page_token(page->next_page_token());
    if (!absl::GetFlag(FLAGS_all) || page->next_page_token().empty()) break;
    req->set_page_token(page->next_page_token());
  }
  if (json) {
    std::printf("%s\n", Json(all).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"GID", "TYPE", "STATUS", "CREATED", "UPDATED", "ROLLBACK REASON"}};
  for (const v1::Transaction& t : all.transactions()) {
    rows.push_back({t.gid(), Name(t.trans_type()), Name(t.status()), Time(t.create_time()),
                    Time(t.update_time()),
                    t.rollback_reason().empty() ? "-" : t.rollback_reason()});
  }
  PrintTable(rows);
  if (!all.next_page_token().empty()) {
    std::printf("\nmore: add --page_token=%s (or --all)\n", all.next_page_token().c_str());
  }
  return 0;
}

int Health(const std::shared_ptr<grpc::Channel>& channel, const std::string& address, bool json) {
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest (the whole server); the
  // answer is field 1, a varint: 1 SERVING, 2 NOT_SERVING.
  grpc::GenericStub stub(channel);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](const grpc::Status& s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return Fail(FromGrpcStatus(status));
  std::vector<grpc::Slice> slices;
  std::string reply;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  int code = reply.size() == 2 && reply[0] == 0x08 ? reply[1] : 0;
  const char* names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  const char* name = code >= 0 && code <= 3 ? names[code] : "UNKNOWN";
  if (json) {
    std::printf("{\n \"status\": \"%s\"\n}\n", name);
  } else {
    std::printf("%s %s\n", address.c_str(), name);
  }
  return code == 1 ? 0 : 1;
}

int Run(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("no command");
  const std::string& cmd = args[0];
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string address = absl::GetFlag(FLAGS_dtm);
  ClientTls tls{absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
                absl::GetFlag(FLAGS_tls_key)};
  const bool use_tls = absl::GetFlag(FLAGS_tls) || !tls.ca_file.empty() || !tls.cert_file.empty();
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (use_tls) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
        CoordinatorClient::Credentials(tls);
    if (!c.ok()) return Fail(c.status());
    credentials = *c;
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(address, credentials);
  auto client = std::make_unique<CoordinatorClient>(channel, absl::GetFlag(FLAGS_timeout), address);
  client->set_auth_token(absl::GetFlag(FLAGS_token));
  auto one_gid = [&]() -> const std::string* { return args.size() == 2 ? &args[1] : nullptr; };
  if (cmd == "health") {
    if (args.size() != 1) return Usage("health takes no arguments");
    return Health(channel, address, json);
  }
  if (cmd == "list") {
    if (args.size() != 1) return Usage("list takes flags, not arguments");
    return List(*client, json);
  }
  if (cmd == "query") {
    if (!one_gid()) return Usage("query needs one gid");
    absl::StatusOr<v1::Transaction> t = client->Query(*one_gid());
    if (!t.ok()) return Fail(t.status());
    json ? (void)std::printf("%s\n", Json(*t).c_str()) : PrintTransaction(*t);
    return 0;
  }
  if (cmd == "force-stop") {
    if (!one_gid()) return Usage("force-stop needs one gid");
    absl::StatusOr<v1::Transaction> t = client->ForceStop(*one_gid(), absl::GetFlag(FLAGS_reason));
    if (!t.ok()) return Fail(t.status());
    json ? (void)std::printf("%s\n", Json(*t).c_str()) : PrintTransaction(*t);
    return 0;
  }
  if (cmd == "retry-now") {
    int64_t count = 1;
    if (absl::GetFlag(FLAGS_all_waiting)) {
      if (args.size() != 1) return Usage("retry-now takes a gid or --all_waiting, not both");
      absl::StatusOr<int64_t> n = client->RetryAllWaiting();
      if (!n.ok()) return Fail(n.status());
      count = *n;
    } else {
      if (!one_gid()) return Usage("retry-now needs one gid (or --all_waiting)");
      absl::Status s = client->RetryNow(*one_gid());
      if (!s.ok()) return Fail(s);
    }
    if (json) {
      std::printf("{\n \"count\": %lld\n}\n", static_cast<long long>(count));
    } else {
      std::printf("%lld transaction(s) due now\n", static_cast<long long>(count));
    }
    return 0;
  }
  return Usage(absl::StrCat("unknown command '", cmd, "'"));
}

}  // namespace
}  // namespace dtm

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(dtm::kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return dtm::Run(std::vector<std::string>(rest.begin() + 1, rest.end()));
}
