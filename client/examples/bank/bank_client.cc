// bank-client: moves money from an account of bank A to an account of bank B through dtmd,
// with a saga, a TCC transaction, a two-phase message or an XA transaction, and prints the
// balances before and after.
//
//   bank-client --mode=saga --amount=3000      # alice (bank A) pays bob (bank B) 30.00
//   bank-client --mode=tcc  --amount=3000
//   bank-client --mode=msg  --amount=3000      # debit is a local transaction in bank A's db
//   bank-client --mode=xa   --amount=3000      # both legs PREPAREd, then committed by dtmd
//   bank-client --mode=saga --amount=99999999  # refused by bank A: compensated, FAILED
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/examples/bank/bank_transfer.h"

ABSL_FLAG(std::string, dtm, "127.0.0.1:36790", "dtmd address");
ABSL_FLAG(std::string, bank_a, "127.0.0.1:50061", "address of the bank debited");
ABSL_FLAG(std::string, bank_b, "127.0.0.1:50062", "address of the bank credited");
ABSL_FLAG(std::string, from, "alice", "account debited, at bank A");
ABSL_FLAG(std::string, to, "bob", "account credited, at bank B");
ABSL_FLAG(int64_t, amount, 3000, "amount in cents");
ABSL_FLAG(std::string, mode, "saga", "saga, tcc, msg or xa");
ABSL_FLAG(std::string, db_a, "host=/tmp/dtm-bank-pg port=5432 user=postgres dbname=postgres",
          "msg: libpq conninfo of bank A's database (the debit is a local transaction there)");
ABSL_FLAG(std::string, schema_a, "bank_a", "msg: bank A's schema");

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "bank-client: %s\n", what.c_str());
  return 1;
}

void PrintBalances(const char* when, const std::string& bank) {
  auto stub =
      bank::v1::Bank::NewStub(grpc::CreateChannel(bank, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  bank::v1::BalancesReply reply;
  grpc::Status s = stub->Balances(&ctx, bank::v1::BalancesRequest(), &reply);
  if (!s.ok()) {
    std::printf("%-7s bank %s: %s\n", when, bank.c_str(), s.error_message().c_str());
    return;
  }
  for (const auto& a : reply.accounts()) {
    std::printf("%-7s bank %s  %-8s balance %10.2f  frozen %8.2f\n", when, bank.c_str(),
                a.user_id().c_str(), a.balance() / 100.0, a.frozen() / 100.0);
  }
}

bool Terminal(dtm::v1::Status s) { return s == dtm::v1::SUCCEEDED || s == dtm::v1::FAILED; }

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("moves money between the example banks through dtmd");
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "saga" && mode != "tcc" && mode != "msg" && mode != "xa") {
    return Fail(absl::StrCat("--mode \"", mode, "\" is not saga, tcc, msg or xa"));
  }
  bank::Transfer t{absl::GetFlag(FLAGS_bank_a), absl::GetFlag(FLAGS_from),
                   absl::GetFlag(FLAGS_bank_b), absl::GetFlag(FLAGS_to),
                   absl::GetFlag(FLAGS_amount)};
  if (t.amount <= 0) return Fail(absl::StrCat("--amount ", t.amount, " must be positive"));
  auto client = dtm::CoordinatorClient::Connect(absl::GetFlag(FLAGS_dtm));
  absl::StatusOr<std::string> gid = client->NewGid();
  if (!gid.ok())
    return Fail(
        absl::StrCat("NewGid at ", absl::GetFlag(FLAGS_dtm), ": ", gid.status().ToString()));

  PrintBalances("before", t.from_bank);
  PrintBalances("before", t.to_bank);
  std::printf("%s %s: %s pays %s %.2f\n", mode.c_str(), gid->c_str(), t.from_user.c_str(),
              t.to_user.c_str(), t.amount / 100.0);
  dtm::v1::TransOptions options;
  options.set_wait_result(true);
  absl::StatusOr<dtm::v1::SubmitResponse> submitted;
  if (mode == "saga") {
    submitted = bank::SagaTransfer(client.get(), *gid, t, options);
  } else if (mode == "tcc") {
    submitted = bank::TccTransfer(client.get(), *gid, t, options);
  } else if (mode == "xa") {
    submitted = bank::XaTransfer(client.get(), *gid, t, options);
  } else {
    absl::StatusOr<bank::BankStore> store =
        bank::BankStore::ForSchema(absl::GetFlag(FLAGS_schema_a));
    if (!store.ok()) return Fail(absl::StrCat("--schema_a: ", store.status().message()));
    bank::Conn db(PQconnectdb(absl::GetFlag(FLAGS_db_a).c_str()));
    if (PQstatus(db.get()) != CONNECTION_OK) {
      return Fail(absl::StrCat("--db_a: ", PQerrorMessage(db.get())));
    }
    submitted = bank::MsgTransfer(client.get(), *gid, t, options, db.get(), *store);
  }
  if (!submitted.ok()) std::printf("  client: %s\n", submitted.status().ToString().c_str());

  // Whatever the client saw, the coordinator's word is final: wait for it.
  absl::StatusOr<dtm::v1::Transaction> txn;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    txn = client->Query(*gid);
    if (txn.ok() && Terminal(txn->status())) break;
    if (absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (!txn.ok()) {
    std::printf("  dtmd: %s\n", txn.status().ToString().c_str());
  } else {
    std::printf("  dtmd: %s%s%s\n", dtm::v1::Status_Name(txn->status()).c_str(),
                txn->rollback_reason().empty() ? "" : " ", txn->rollback_reason().c_str());
  }
  PrintBalances("after", t.from_bank);
  PrintBalances("after", t.to_bank);
  return txn.ok() && txn->status() == dtm::v1::SUCCEEDED ? 0 : 2;
}
