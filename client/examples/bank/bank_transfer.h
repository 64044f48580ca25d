// Moving money between two example banks with a saga, a TCC transaction, a two-phase
// message or an XA transaction: the client side of the example, shared by bank-client and
// the invariant test.
#ifndef DTM_CLIENT_EXAMPLES_BANK_BANK_TRANSFER_H_
#define DTM_CLIENT_EXAMPLES_BANK_BANK_TRANSFER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bank/v1/bank.grpc.pb.h"
#include "client/coordinator_client.h"
#include "client/examples/bank/bank_store.h"

namespace bank {

struct Transfer {
  std::string from_bank;  // "host:port" of the bank debited
  std::string from_user;
  std::string to_bank;  // "host:port" of the bank credited
  std::string to_user;
  int64_t amount = 0;
};

// "host:port/bank.v1.Bank/<method>": a branch target.
std::string Target(const std::string& bank, const char* method);

// Saga: TransOut at the debited bank, then TransIn at the credited one (compensations
// TransOutCompensate / TransInCompensate). Returns Submit's answer.
absl::StatusOr<dtm::v1::SubmitResponse> SagaTransfer(dtm::CoordinatorClient* client,
                                                     const std::string& gid, const Transfer& t,
                                                     const dtm::v1::TransOptions& options);
// TCC: TransOutTry then TransInTry; confirmed or cancelled by the coordinator.
absl::StatusOr<dtm::v1::SubmitResponse> TccTransfer(dtm::CoordinatorClient* client,
                                                    const std::string& gid, const Transfer& t,
                                                    const dtm::v1::TransOptions& options);
// Two-phase message: the debit is a local transaction in the debited bank's database
// (`from_db`, tables of `from_store`), behind the msg barrier; the message delivers TransIn
// to the credited bank. The debited bank's QueryPrepared is the back-check.
absl::StatusOr<dtm::v1::SubmitResponse> MsgTransfer(dtm::CoordinatorClient* client,
                                                    const std::string& gid, const Transfer& t,
                                                    const dtm::v1::TransOptions& options,
                                                    PGconn* from_db, const BankStore& from_store);

// XA: TransOutXa at the debited bank, then TransInXa at the credited one; each prepares its
// local transaction, and the coordinator commits both or rolls both back.
absl::StatusOr<dtm::v1::SubmitResponse> XaTransfer(dtm::CoordinatorClient* client,
                                                   const std::string& gid, const Transfer& t,
                                                   const dtm::v1::TransOptions& options);
// XA's phase 1 only, as a client that dies before it submits or aborts: the transaction
// stays PREPARED, holding both legs' row locks, until the coordinator's timeout_to_fail
// aborts it. Returns the first error.
absl::Status XaTransferThenVanish(dtm::CoordinatorClient* client, const std::string& gid,
                                  const Transfer& t, const dtm::v1::TransOptions& options);

}  // namespace bank

#endif  // DTM_CLIENT_EXAMPLES_BANK_BANK_TRANSFER_H_
