#include "client/examples/bank/bank_transfer.h"

#include "absl/strings/str_cat.h"
#include "client/msg.h"
#include "client/pg/barrier.h"
#include "client/saga.h"
#include "client/tcc.h"
#include "client/xa.h"

namespace bank {
namespace {

v1::TransferRequest Leg(const std::string& user, int64_t amount) {
  v1::TransferRequest r;
  r.set_user_id(user);
  r.set_amount(amount);
  return r;
}

// Both XA legs, debit first.
absl::Status XaLegs(dtm::Xa& xa, const Transfer& t) {
  absl::Status out = xa.CallBranch(Leg(t.from_user, t.amount), Target(t.from_bank, "TransOutXa"));
  if (!out.ok()) return out;
  return xa.CallBranch(Leg(t.to_user, t.amount), Target(t.to_bank, "TransInXa"));
}

}  // namespace

std::string Target(const std::string& bank, const char* method) {
  return absl::StrCat(bank, "/bank.v1.Bank/", method);
}

absl::StatusOr<dtm::v1::SubmitResponse> SagaTransfer(dtm::CoordinatorClient* client,
                                                     const std::string& gid, const Transfer& t,
                                                     const dtm::v1::TransOptions& options) {
  dtm::Saga saga(client, gid);
  saga.options() = options;
  saga.Add(Target(t.from_bank, "TransOut"), Target(t.from_bank, "TransOutCompensate"),
           Leg(t.from_user, t.amount))
      .Add(Target(t.to_bank, "TransIn"), Target(t.to_bank, "TransInCompensate"),
           Leg(t.to_user, t.amount));
  return saga.Submit();
}

absl::StatusOr<dtm::v1::SubmitResponse> TccTransfer(dtm::CoordinatorClient* client,
                                                    const std::string& gid, const Transfer& t,
                                                    const dtm::v1::TransOptions& options) {
  return dtm::Tcc::Run(
      client, gid,
      [&](dtm::Tcc& tcc) -> absl::Status {
        absl::Status out = tcc.CallBranch(
            Leg(t.from_user, t.amount), Target(t.from_bank, "TransOutTry"),
            Target(t.from_bank, "TransOutConfirm"), Target(t.from_bank, "TransOutCancel"));
        if (!out.ok()) return out;
        return tcc.CallBranch(Leg(t.to_user, t.amount), Target(t.to_bank, "TransInTry"),
                              Target(t.to_bank, "TransInConfirm"),
                              Target(t.to_bank, "TransInCancel"));
      },
      options);
}

absl::StatusOr<dtm::v1::SubmitResponse> MsgTransfer(dtm::CoordinatorClient* client,
                                                    const std::string& gid, const Transfer& t,
                                                    const dtm::v1::TransOptions& options,
                                                    PGconn* from_db, const BankStore& from_store) {
  dtm::Msg msg(client, gid);
  msg.options() = options;
  msg.Add(Target(t.to_bank, "TransIn"), Leg(t.to_user, t.amount));
  const dtm::BranchContext local{gid, "msg", "00", "msg", client->address()};
  return dtm::DoAndSubmitDb(msg, Target(t.from_bank, "QueryPrepared"), from_db, [&](PGconn* tx) {
    return from_store.Apply(tx, Op::kTransOut, t.from_user, t.amount, local);
  });
}

absl::StatusOr<dtm::v1::SubmitResponse> XaTransfer(dtm::CoordinatorClient* client,
                                                   const std::string& gid, const Transfer& t,
                                                   const dtm::v1::TransOptions& options) {
  return dtm::Xa::Run(
      client, gid, [&](dtm::Xa& xa) { return XaLegs(xa, t); }, options);
}

absl::Status XaTransferThenVanish(dtm::CoordinatorClient* client, const std::string& gid,
                                  const Transfer& t, const dtm::v1::TransOptions& options) {
  absl::StatusOr<dtm::Xa> xa = dtm::Xa::Begin(client, gid, options);
  if (!xa.ok()) return xa.status();
  return XaLegs(*xa, t);
}

}  // namespace bank
