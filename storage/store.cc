#include "storage/store.h"

#include "absl/synchronization/notification.h"

namespace dtm {

WriteResult Store::WriteSync(WriteOp op) {
  WriteResult result;
  if (OnStoreThread()) {
    result.status = absl::InternalError(
        "Store::WriteSync called from the store's own thread (a write's callback): it would "
        "wait for itself; use Write");
    return result;
  }
  absl::Notification done;
  Write(std::move(op), [&](WriteResult r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace dtm
