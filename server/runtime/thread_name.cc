#include "server/runtime/thread_name.h"

#include <pthread.h>

#include <cstddef>
#include <string>

namespace dtm {

void NameThisThread(absl::string_view name) {
  constexpr size_t kMaxLength = 15;  // the kernel's TASK_COMM_LEN, less the terminating NUL
  const std::string cut(name.substr(0, kMaxLength));
  pthread_setname_np(pthread_self(), cut.c_str());
}

std::string ThisThreadName() {
  char name[64] = {};  // the kernel's names are at most 16 bytes with the NUL
  if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0) return "";
  return name;
}

}  // namespace dtm
