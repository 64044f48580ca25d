// Clock: the only source of "now" for the engine, so time can be injected in tests
// (tests/fakes/fake_clock.h).
#ifndef DTM_SERVER_RUNTIME_CLOCK_H_
#define DTM_SERVER_RUNTIME_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dtm {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_CLOCK_H_
