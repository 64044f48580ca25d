#include "server/engine/backoff.h"

#include <algorithm>

namespace dtm {

absl::Duration BackoffPolicy::Nominal(int failures) const {
  absl::Duration d = initial;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

absl::Duration BackoffPolicy::Jittered(int failures, double unit) const {
  unit = std::clamp(unit, 0.0, 1.0);
  absl::Duration nominal = Nominal(failures);
  return nominal / 2 + (nominal / 2) * unit;
}

}  // namespace dtm
