// W3C Trace Context (https://www.w3.org/TR/trace-context/) for a global transaction: the
// `traceparent` a client sent with its Submit or Prepare (gRPC metadata or HTTP header) is
// stored with the transaction, and every branch call carries a child of it: the same trace id
// and flags, a new span id per call. So a tracing backend shows the client's request, the
// coordinator's calls and the branches' work as one trace, also when another replica makes
// the calls after a restart.
//
// Pure functions; thread-safe.
#ifndef DTM_SERVER_MODEL_TRACE_CONTEXT_H_
#define DTM_SERVER_MODEL_TRACE_CONTEXT_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace dtm {

// True if `traceparent` is a valid version-00 header ("00-<32 hex>-<16 hex>-<2 hex>", lower
// case, trace id and parent id not all zero). Later versions are accepted as W3C asks: their
// first four fields parsed as version 00's, anything after them ignored.
bool ValidTraceParent(absl::string_view traceparent);
// True if `tracestate` can be forwarded: printable ASCII, at most 512 bytes (W3C's limit is
// 32 list members; the length bounds what the store keeps).
bool ValidTraceState(absl::string_view tracestate);

// The 32 hex digits of the trace id of a valid `traceparent`; "" otherwise.
std::string TraceIdOf(absl::string_view traceparent);

// A version-00 traceparent for a call made on behalf of `parent`: the same trace id and
// flags, a new random span id. An empty or invalid parent starts a new sampled trace.
std::string ChildTraceParent(absl::string_view parent);

// The trace context a new transaction stores, from what its client sent: `traceparent` and
// `tracestate` from the request's metadata or headers, else the same keys in its
// branch_headers (clients written for DTM pass them there). Those two keys leave
// `branch_headers` either way: the coordinator sends its own, per call. Without a valid
// traceparent the transaction starts a trace of its own (random ids).
struct TraceContext {
  std::string traceparent;  // always valid
  std::string tracestate;   // may be empty
};
TraceContext AdoptTraceContext(absl::string_view traceparent, absl::string_view tracestate,
                               std::map<std::string, std::string>& branch_headers);

}  // namespace dtm

#endif  // DTM_SERVER_MODEL_TRACE_CONTEXT_H_
