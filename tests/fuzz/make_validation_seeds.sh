#!/usr/bin/env bash
# Writes tests/fuzz/corpus/fuzz_validation/: real dtm.v1 requests as fuzz_validation reads them,
# a byte naming the request (0 Submit, 1 Prepare, 2 RegisterBranch, 3 List, 4 Abort) and the
# request serialized by protoc from the text below. Run once after changing the seeds or the
# proto; the output is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus/fuzz_validation
mkdir -p "$out"

seed() {  # NAME KIND MESSAGE, the text format on stdin
  local name=$1 kind=$2 message=$3
  {
    printf "\\x$(printf '%02x' "$kind")"
    protoc --proto_path=proto --proto_path=/usr/include --encode="dtm.v1.$message" \
      dtm/v1/coordinator.proto
  } >"$out/$name"
}

seed submit-saga 0 SubmitRequest <<'T'
gid: "saga-1" trans_type: SAGA
steps { action: "grpc://127.0.0.1:50051/bank.Bank/TransOut"
        compensate: "grpc://127.0.0.1:50051/bank.Bank/TransOutRevert" payload: "\x08\x1e" }
steps { action: "127.0.0.1:50052/bank.Bank/TransIn"
        compensate: "127.0.0.1:50052/bank.Bank/TransInRevert" payload: "\x08\x1e" }
options { wait_result: true timeout_to_fail { seconds: 1800 } retry_interval { seconds: 5 }
          max_retry_interval { seconds: 60 } request_timeout { seconds: 3 nanos: 500000000 }
          retry_limit: 3 branch_headers { key: "authorization" value: "Bearer x" } }
T
seed submit-saga-concurrent 0 SubmitRequest <<'T'
gid: "saga.concurrent:2" trans_type: SAGA
steps { action: "dns:///busi.ns.svc.cluster.local:8080/busi.Busi/A" payload: "a" }
steps { action: "http://localhost:8081/api/busi/B"
        compensate: "http://localhost:8081/api/busi/BRevert" after: 0 }
steps { action: "https://[::1]:8443/api/busi/C?x=1" after: 0 after: 1 }
options { concurrent: true }
T
seed submit-saga-max-durations 0 SubmitRequest <<'T'
gid: "saga-2" trans_type: SAGA steps { action: "127.0.0.1:50051/a.B/C" }
options { timeout_to_fail { seconds: 315576000000 nanos: 999999999 }
          retry_interval { seconds: 315576000000 } request_timeout { nanos: 100000000 } }
T
seed submit-msg 0 SubmitRequest <<'T'
gid: "msg-1" trans_type: MSG
steps { action: "grpc://localhost:50051/busi.Busi/TransIn" payload: "{}" }
steps { action: "http://busi:8081/api/busi/TransIn" }
options { concurrent: true delay { seconds: 10 } }
T
seed submit-tcc 0 SubmitRequest <<'T'
gid: "tcc-1" trans_type: TCC
T
seed submit-msg-commit 0 SubmitRequest <<'T'
gid: "msg-2" trans_type: MSG
T
seed prepare-tcc 1 PrepareRequest <<'T'
gid: "tcc-2" trans_type: TCC
options { timeout_to_fail { seconds: 60 } request_timeout { nanos: 200000000 } }
T
seed prepare-msg 1 PrepareRequest <<'T'
gid: "msg-3" trans_type: MSG
query_prepared: "grpc://127.0.0.1:50051/busi.Busi/QueryPrepared"
steps { action: "127.0.0.1:50051/busi.Busi/TransIn" payload: "\x00\x01\xff" }
options { branch_headers { key: "x-request-id" value: "42" } }
T
seed register-grpc 2 RegisterBranchRequest <<'T'
gid: "tcc-2" trans_type: TCC branch_id: "01"
confirm: "grpcs://busi.example.com:443/busi.Busi/Confirm"
cancel: "grpc://127.0.0.1:50051/busi.Busi/Cancel"
payload: "\x08\x1e"
T
seed register-http 2 RegisterBranchRequest <<'T'
gid: "tcc-2" trans_type: TCC branch_id: "b.2:x-y"
confirm: "http://localhost:8081/api/busi/Confirm" cancel: "http://localhost:8081/api/busi/Cancel"
T
seed list 3 ListRequest <<'T'
page_size: 10 status: SUBMITTED trans_type: SAGA gid_prefix: "saga-"
created_after { seconds: 1700000000 } created_before { seconds: 1800000000 nanos: 5 }
T
seed list-page 3 ListRequest <<'T'
page_token: "MTcwMDAwMDAwMDAwMDAwMHxzYWdhLTE"
T
seed abort-tcc 4 AbortRequest <<'T'
gid: "tcc-2" trans_type: TCC reason: "the client gave up"
T
seed abort-msg 4 AbortRequest <<'T'
gid: "msg-3" trans_type: MSG
T
seed prepare-xa 1 PrepareRequest <<'T'
gid: "xa-1" trans_type: XA options { timeout_to_fail { seconds: 10 } }
T
seed register-xa 2 RegisterBranchRequest <<'T'
gid: "xa-1" trans_type: XA branch_id: "01"
phase2_target: "127.0.0.1:50061/bank.v1.Bank/TransOutXa"
T
seed abort-xa 4 AbortRequest <<'T'
gid: "xa-1" trans_type: XA reason: "a branch refused"
T
echo "wrote $(ls "$out" | wc -l) seeds in $out"

# fuzz_dtmgimp: DTM's gRPC requests, a byte naming the request (0 Submit, 1 Prepare, 2 Abort,
# 3 RegisterBranch) and the request serialized from the text below, as DTM's Go SDK fills it.
out=tests/fuzz/corpus/fuzz_dtmgimp
mkdir -p "$out"
gimp() {  # NAME KIND MESSAGE, the text format on stdin
  local name=$1 kind=$2 message=$3
  {
    printf "\\x$(printf '%02x' "$kind")"
    protoc --proto_path=proto/dtmgimp --proto_path=/usr/include --encode="dtmgimp.$message" \
      dtmgimp.proto
  } >"$out/$name"
}
gimp submit-saga 0 DtmRequest <<'T'
Gid: "saga-1" TransType: "saga"
TransOptions { WaitResult: true TimeoutToFail: 1800 RetryInterval: 5 RequestTimeout: 3
               RetryLimit: 3 BranchHeaders { key: "Test_Header" value: "x" } }
Steps: "[{\"action\":\"localhost:58081/busi.Busi/TransOut\",\"compensate\":\"localhost:58081/busi.Busi/TransOutRevert\"},{\"action\":\"localhost:58081/busi.Busi/TransIn\",\"compensate\":\"localhost:58081/busi.Busi/TransInRevert\"}]"
BinPayloads: "\x08\x1e" BinPayloads: "\x08\x1e"
CustomedData: "{\"orders\":{\"1\":[0]},\"concurrent\":true}"
T
gimp prepare-msg 1 DtmRequest <<'T'
Gid: "msg-1" TransType: "msg" TransOptions { }
QueryPrepared: "localhost:58081/busi.Busi/QueryPrepared"
Steps: "[{\"action\":\"localhost:58081/busi.Busi/TransIn\"}]" BinPayloads: "{}"
CustomedData: "{\"delay\":10}"
T
gimp prepare-tcc 1 DtmRequest <<'T'
Gid: "tcc-1" TransType: "tcc" TransOptions { TimeoutToFail: 60 } Steps: "null"
T
gimp abort-tcc 2 DtmRequest <<'T'
Gid: "tcc-1" TransType: "tcc" TransOptions { } Steps: "null" RollbackReason: "try refused"
T
gimp register-tcc 3 DtmBranchRequest <<'T'
Gid: "tcc-1" TransType: "tcc" BranchID: "01" BusiPayload: "\x08\x1e"
Data { key: "confirm" value: "localhost:58081/busi.Busi/TransOutConfirm" }
Data { key: "cancel" value: "localhost:58081/busi.Busi/TransOutRevert" }
T
gimp register-xa 3 DtmBranchRequest <<'T'
Gid: "xa-1" TransType: "xa" BranchID: "01"
Data { key: "url" value: "localhost:58081/busi.Busi/TransOutXa" }
T
echo "wrote $(ls "$out" | wc -l) seeds in $out"
