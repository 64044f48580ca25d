// libFuzzer's start-up hook for the fuzz targets that parse protobuf messages (compiled into
// each of them by dtm_fuzz_target's PROTOBUF option). Protobuf logs every string field that is
// not UTF-8 as it refuses it: fine to refuse, noise and slow to log once per input.
#include "google/protobuf/stubs/logging.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}
