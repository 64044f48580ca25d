// Names the calling thread, so that top -H, perf, gdb and /proc/<pid>/task/*/comm tell
// dtmd's threads apart (the store's writer from its completion thread, the engine's pool
// from gRPC's own threads) instead of showing the process name for each.
#ifndef DTM_SERVER_RUNTIME_THREAD_NAME_H_
#define DTM_SERVER_RUNTIME_THREAD_NAME_H_

#include <string>

#include "absl/strings/string_view.h"

namespace dtm {

// Linux keeps 15 bytes of a thread's name: a longer `name` is cut there. Best effort: a
// thread that cannot be named keeps its name.
void NameThisThread(absl::string_view name);

// The calling thread's name ("" if it cannot be read).
std::string ThisThreadName();

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_THREAD_NAME_H_
