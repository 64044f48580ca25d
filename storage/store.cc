#include "storage/store.h"

#include "absl/synchronization/notification.h"

namespace dtm {

WriteResult Store::WriteSync(WriteOp op) {
  absl::Notification done;
  WriteResult result;
  Write(std::move(op), [&](WriteResult r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace dtm
