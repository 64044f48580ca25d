// Test helper shared by the engine's unit tests.
#ifndef DTM_SERVER_ENGINE_TEST_TRANSACTIONS_H_
#define DTM_SERVER_ENGINE_TEST_TRANSACTIONS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "server/model/transaction.h"

namespace dtm::test {

// A SUBMITTED saga of `steps` steps with targets "h:1/s.S/A<i>" and "h:1/s.S/C<i>".
inline Transaction MakeTestSaga(const std::string& gid, int steps, bool concurrent = false) {
  Transaction t;
  t.gid = gid;
  t.trans_type = TransType::kSaga;
  t.status = GlobalStatus::kSubmitted;
  t.options.concurrent = concurrent;
  for (int i = 0; i < steps; ++i) {
    Branch a;
    a.branch_id = SagaBranchId(i);
    a.op = BranchOp::kAction;
    a.target = absl::StrCat("h:1/s.S/A", i + 1);
    Branch c = a;
    c.op = BranchOp::kCompensate;
    c.target = absl::StrCat("h:1/s.S/C", i + 1);
    t.branches.push_back(a);
    t.branches.push_back(c);
  }
  return t;
}

}  // namespace dtm::test

#endif  // DTM_SERVER_ENGINE_TEST_TRANSACTIONS_H_
