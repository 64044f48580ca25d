// Conversions between dtm.v1 protos and domain types: the only place where both meet.
#ifndef DTM_SERVER_API_CONVERT_H_
#define DTM_SERVER_API_CONVERT_H_

#include "dtm/v1/coordinator.pb.h"
#include "server/model/transaction.h"

namespace dtm {

void ToProto(const Transaction& t, v1::Transaction* out);
void ToProto(const TransOptions& o, v1::TransOptions* out);
void ToProto(absl::Time t, google::protobuf::Timestamp* out);
void ToProto(absl::Duration d, google::protobuf::Duration* out);
absl::Time FromProto(const google::protobuf::Timestamp& t);
absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace dtm

#endif  // DTM_SERVER_API_CONVERT_H_
