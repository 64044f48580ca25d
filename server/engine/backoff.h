// BackoffPolicy: how long to wait before retrying a branch after consecutive transient
// errors. Doubling from `initial`, capped at `max`, with "equal jitter": the wait is drawn
// from [nominal/2, nominal], so jitter never shortens a wait below half its nominal value.
// Pure value type; the random draw is passed in so tests are deterministic.
#ifndef DTM_SERVER_ENGINE_BACKOFF_H_
#define DTM_SERVER_ENGINE_BACKOFF_H_

#include "absl/time/time.h"

namespace dtm {

struct BackoffPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Minutes(5);

  // Returns min(initial * 2^(failures-1), max); failures >= 1.
  absl::Duration Nominal(int failures) const;
  // Returns Nominal(failures) scaled into [1/2, 1] by `unit` in [0, 1].
  absl::Duration Jittered(int failures, double unit) const;
};

}  // namespace dtm

#endif  // DTM_SERVER_ENGINE_BACKOFF_H_
