// DTM's JSON as its Go and Python SDKs send it (bodies copied from what those SDKs build), and
// every refusal naming its field.
#include "server/api/http/dtm_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace dtm {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

const ApiLimits kLimits;

TEST(DtmJsonTest, ReadsTheGoSdksSagaWithDtmsDurationsInSeconds) {
  auto t = ParseDtmTransaction(R"({"gid":"sagaG1","trans_type":"saga","wait_result":true,
      "timeout_to_fail":1800,"retry_interval":5,"request_timeout":8,"retry_limit":3,
      "branch_headers":{"Authorization":"Bearer x"},"concurrent":false,
      "steps":[{"action":"http://busi/api/TransOut","compensate":"http://busi/api/TransOutRevert"},
               {"action":"http://busi/api/TransIn","compensate":"http://busi/api/TransInRevert"}],
      "payloads":["{\"amount\":30}","{\"amount\":30}"],"protocol":""})",
                               DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->gid, "sagaG1");
  EXPECT_EQ(t->trans_type, TransType::kSaga);
  EXPECT_EQ(t->status, GlobalStatus::kSubmitted);
  EXPECT_TRUE(t->options.wait_result);
  EXPECT_EQ(t->options.timeout_to_fail, absl::Seconds(1800));
  EXPECT_EQ(t->options.retry_interval, absl::Seconds(5));
  EXPECT_EQ(t->options.request_timeout, absl::Seconds(8));
  EXPECT_EQ(t->options.retry_limit, 3);
  EXPECT_EQ(t->options.branch_headers.at("authorization"), "Bearer x");  // lower-cased
  ASSERT_EQ(t->branches.size(), 4u);
  EXPECT_EQ(t->branches[0].target, "http://busi/api/TransOut");
  EXPECT_EQ(t->branches[0].op, BranchOp::kAction);
  EXPECT_EQ(t->branches[1].target, "http://busi/api/TransOutRevert");
  EXPECT_EQ(t->branches[3].payload, "{\"amount\":30}");
  EXPECT_EQ(t->branches[2].branch_id, "02");
}

TEST(DtmJsonTest, ReadsThePythonSdksNullsAndExtraKeys) {
  auto t = ParseDtmTransaction(R"({"gid":"p1","trans_type":"saga","custom_data":null,
      "steps":[{"action":"http://b/a","compensate":"http://b/c"}],"payloads":["{\"amount\": 30}"],
      "query_prepared":null,"protocol":null,"wait_result":false,"timeout_to_fail":0,
      "request_timeout":8,"retry_interval":0,"passthrough_headers":[],"branch_headers":{},
      "concurrent":false})",
                               DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->options.timeout_to_fail, absl::ZeroDuration());  // 0: none for a saga
  EXPECT_EQ(t->options.retry_interval, absl::Seconds(1));       // 0: the default
  EXPECT_EQ(t->options.request_timeout, absl::Seconds(8));
}

TEST(DtmJsonTest, ReadsAConcurrentSagasOrdersAndTheLegacyStepData) {
  auto t = ParseDtmTransaction(R"({"gid":"c1","trans_type":"saga",
      "custom_data":"{\"concurrent\":true,\"orders\":{\"1\":[0],\"2\":[0,1]}}","concurrent":true,
      "steps":[{"action":"http://b/a0","data":"p0"},{"action":"http://b/a1","data":"p1"},
               {"action":"http://b/a2","data":"p2"}]})",
                               DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->options.concurrent);
  EXPECT_TRUE(t->branches[0].after.empty());
  EXPECT_EQ(t->branches[2].after, std::vector<int32_t>({0}));
  EXPECT_EQ(t->branches[4].after, std::vector<int32_t>({0, 1}));
  EXPECT_EQ(t->branches[4].payload, "p2");
}

TEST(DtmJsonTest, ReadsATccAndAMsgWithItsDelay) {
  auto tcc = ParseDtmTransaction(R"({"gid":"t1","trans_type":"tcc","concurrent":false})",
                                 DtmRoute::kPrepare, kLimits);
  ASSERT_TRUE(tcc.ok()) << tcc.status();
  EXPECT_EQ(tcc->status, GlobalStatus::kPrepared);
  EXPECT_EQ(tcc->options.timeout_to_fail, absl::Seconds(35));  // tcc/msg default
  auto msg = ParseDtmTransaction(R"({"gid":"m1","trans_type":"msg","custom_data":"{\"delay\":10}",
      "steps":[{"action":"http://b/TransIn"}],"payloads":["{}"],
      "query_prepared":"http://b/QueryPrepared"})",
                                 DtmRoute::kPrepare, kLimits);
  ASSERT_TRUE(msg.ok()) << msg.status();
  EXPECT_EQ(msg->options.delay, absl::Seconds(10));
  EXPECT_EQ(msg->query_prepared, "http://b/QueryPrepared");
  ASSERT_EQ(msg->branches.size(), 1u);
  // The phase-2 submit of a prepared msg may come without its steps.
  auto commit =
      ParseDtmTransaction(R"({"gid":"m1","trans_type":"msg"})", DtmRoute::kSubmit, kLimits);
  ASSERT_TRUE(commit.ok()) << commit.status();
  EXPECT_TRUE(commit->branches.empty());
}

TEST(DtmJsonTest, RefusesBadInputNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "the body is empty"},
      {"{not json", "not valid JSON"},
      {"[1,2]", "is a JSON array, not an object"},
      {R"({"trans_type":"saga"})", "gid is missing"},
      {R"({"gid":"a/b","trans_type":"saga"})", "gid 'a/b'"},
      {R"({"gid":"g"})", "trans_type is missing"},
      {R"({"gid":"g","trans_type":"workflow"})",
       "trans_type 'workflow' is not saga, tcc, msg or xa"},
      {R"({"gid":"g","trans_type":"xa","steps":[{"action":"http://b/a"}]})",
       "steps is set, but an xa's branches are registered one by one"},
      {R"({"gid":"g","trans_type":7})", "trans_type must be a string, not a number"},
      {R"({"gid":"g","trans_type":"saga"})", "steps is empty"},
      {R"({"gid":"g","trans_type":"saga","timeout_to_fail":"10","steps":[{"action":"http://b/a"}]})",
       "timeout_to_fail must be a whole number"},
      {R"({"gid":"g","trans_type":"saga","retry_interval":-1,"steps":[{"action":"http://b/a"}]})",
       "retry_interval is negative"},
      {R"({"gid":"g","trans_type":"saga","timeout_to_fail":18446744073709551615,"steps":[{"action":"http://b/a"}]})",
       "timeout_to_fail is too large: 18446744073709551615"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],"branch_headers":{"X-A":"1","x-a":"2"}})",
       "branch_headers['x-a'] is given twice, in two cases"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],"branch_headers":[]})",
       "branch_headers must be an object, not an array"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],"payloads":["a","b"]})",
       "payloads has 2 entries for 1 steps"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"ftp://b/a"}]})", "steps[0].action"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":1}]})",
       "steps[0].action must be a string"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],
           "custom_data":"{\"concurrent\":true,\"orders\":{\"5\":[0]}}"})",
       "custom_data.orders['5'] is not a step index"},
      {R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],
           "branch_headers":{"x":1}})",
       "branch_headers['x'] must be a string"},
      {R"({"gid":"g","trans_type":"tcc","steps":[{"action":"http://b/a"}]})",
       "steps is set, but a tcc's branches are registered"},
  };
  for (const auto& [body, why] : cases) {
    auto t = ParseDtmTransaction(body, DtmRoute::kSubmit, kLimits);
    ASSERT_FALSE(t.ok()) << body;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(why)) << body;
  }
  // Found by fuzz_dtm_json: a deeply nested value where a number belongs was dumped back into
  // the message, recursing once per level until the stack ran out; and durations beyond what
  // google.protobuf.Duration holds were accepted here while gRPC refused them.
  std::string deep = absl::StrCat(R"({"gid":"g","trans_type":"tcc","timeout_to_fail":)",
                                  std::string(100000, '['), std::string(100000, ']'), "}");
  auto nested = ParseDtmTransaction(deep, DtmRoute::kPrepare, kLimits);
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nested.status().message()),
              HasSubstr("timeout_to_fail must be a whole number, not an array"));
  auto long_ago =
      ParseDtmTransaction(R"({"gid":"g","trans_type":"tcc","timeout_to_fail":315576000001})",
                          DtmRoute::kPrepare, kLimits);
  EXPECT_EQ(long_ago.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(long_ago.status().message()),
              HasSubstr("timeout_to_fail '87660000h1s' is above the maximum of 87672h"));

  ApiLimits small;
  small.max_payload_bytes = 3;
  auto big = ParseDtmTransaction(
      R"({"gid":"g","trans_type":"saga","steps":[{"action":"http://b/a"}],"payloads":["1234"]})",
      DtmRoute::kSubmit, small);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("payloads[0] is 4 bytes"));
}

TEST(DtmJsonTest, PrepareOfASagaAndAbortOfASagaAreRefusedStateChanges) {
  auto prepare =
      ParseDtmTransaction(R"({"gid":"g","trans_type":"saga"})", DtmRoute::kPrepare, kLimits);
  EXPECT_EQ(prepare.status().code(), absl::StatusCode::kFailedPrecondition);
  auto abort = ParseDtmTransaction(R"({"gid":"g","trans_type":"saga"})", DtmRoute::kAbort, kLimits);
  EXPECT_EQ(abort.status().code(), absl::StatusCode::kFailedPrecondition);
  auto ok = ParseDtmTransaction(R"({"gid":"g","trans_type":"tcc","rollback_reason":"no"})",
                                DtmRoute::kAbort, kLimits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->rollback_reason, "no");
}

TEST(DtmJsonTest, ReadsRegistrationsAsDtmsSdksSendThem) {
  auto r = ParseDtmRegistration(
      R"({"branch_id":"01","cancel":"http://busi/api/TransOutRevert",
          "confirm":"http://busi/api/TransOutConfirm","data":"{\"amount\":30}","gid":"tccG1",
          "trans_type":"tcc","status":"prepared"})",
      kLimits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->gid, "tccG1");
  EXPECT_EQ(r->branch_id, "01");
  EXPECT_EQ(r->confirm, "http://busi/api/TransOutConfirm");
  EXPECT_EQ(r->cancel, "http://busi/api/TransOutRevert");
  EXPECT_EQ(r->payload, "{\"amount\":30}");
  auto number = ParseDtmRegistration(R"({"gid":"g","trans_type":"tcc","branch_id":1})", kLimits);
  EXPECT_EQ(number.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(number.status().message()), HasSubstr("branch_id must be a string"));
  auto saga = ParseDtmRegistration(R"({"gid":"g","trans_type":"saga","branch_id":"01"})", kLimits);
  EXPECT_EQ(saga.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DtmJsonTest, ReadsXaAsDtmsSdksSendIt) {
  // dtmcli.XaGlobalTransaction2: prepare, then submit or abort, with no steps.
  for (DtmRoute route : {DtmRoute::kPrepare, DtmRoute::kSubmit, DtmRoute::kAbort}) {
    auto t = ParseDtmTransaction(
        R"({"gid":"xaG1","trans_type":"xa","protocol":"","concurrent":false})", route, kLimits);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->trans_type, TransType::kXa);
    EXPECT_TRUE(t->branches.empty());
  }
  // The resource manager registers its branch with one url: its commit and rollback target.
  auto r = ParseDtmRegistration(R"({"gid":"xaG1","trans_type":"xa",
      "url":"http://busi/api/xa/TransOut","branch_id":"01"})",
                                kLimits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->trans_type, TransType::kXa);
  EXPECT_EQ(r->branch_id, "01");
  EXPECT_EQ(r->confirm, "http://busi/api/xa/TransOut");
  EXPECT_EQ(r->cancel, "http://busi/api/xa/TransOut");
  EXPECT_TRUE(r->payload.empty());
  auto no_url =
      ParseDtmRegistration(R"({"gid":"xaG1","trans_type":"xa","branch_id":"01"})", kLimits);
  EXPECT_EQ(no_url.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_url.status().message()), HasSubstr("url is missing"));
  auto bad_url = ParseDtmRegistration(
      R"({"gid":"xaG1","trans_type":"xa","branch_id":"01","url":"ftp://x/y"})", kLimits);
  EXPECT_EQ(bad_url.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_url.status().message()), HasSubstr("url"));
  EXPECT_EQ(ParseDtmTransType("xa"), TransType::kXa);
  // Each type's targets only: what the other type's keys say would be dropped unseen.
  auto xa_confirm = ParseDtmRegistration(
      R"({"gid":"xaG1","trans_type":"xa","branch_id":"01","url":"http://b/x",
          "confirm":"http://b/c"})",
      kLimits);
  EXPECT_EQ(xa_confirm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(xa_confirm.status().message()), HasSubstr("is for a tcc branch"));
  auto tcc_url = ParseDtmRegistration(
      R"({"gid":"g","trans_type":"tcc","branch_id":"01","url":"http://b/x",
          "confirm":"http://b/c"})",
      kLimits);
  EXPECT_EQ(tcc_url.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tcc_url.status().message()), HasSubstr("is for an xa branch"));
}

TEST(DtmJsonTest, StepsAndCustomDataAsJsonTextForTheGrpcFace) {
  EXPECT_TRUE(ParseDtmSteps("", "Steps")->empty());
  EXPECT_TRUE(ParseDtmSteps("null", "Steps")->empty());
  auto steps =
      ParseDtmSteps(R"([{"action":"h:1/a.B/A","compensate":"h:1/a.B/C"},{"action":""}])", "Steps");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].compensate, "h:1/a.B/C");
  EXPECT_THAT(std::string(ParseDtmSteps("[1]", "Steps").status().message()),
              HasSubstr("Steps[0] must be an object"));
  EXPECT_THAT(std::string(ParseDtmSteps("[", "Steps").status().message()),
              HasSubstr("Steps is not valid JSON"));

  TransOptions o;
  std::vector<StepSpec> none;
  ASSERT_TRUE(ApplyDtmCustomData(R"({"DELAY":7})", "CustomedData", TransType::kMsg, none, o).ok());
  EXPECT_EQ(o.delay, absl::Seconds(7));
  absl::Status negative =
      ApplyDtmCustomData(R"({"delay":-1})", "CustomedData", TransType::kMsg, none, o);
  EXPECT_THAT(std::string(negative.message()), HasSubstr("CustomedData.delay"));
  std::vector<StepSpec> two(2);
  ASSERT_TRUE(ApplyDtmCustomData(R"({"Concurrent":true,"Orders":{"1":[0]}})", "CustomedData",
                                 TransType::kSaga, two, o)
                  .ok());
  EXPECT_TRUE(o.concurrent);
  EXPECT_EQ(two[1].after, std::vector<int32_t>({0}));
  // An index that does not fit 32 bits is refused, not wrapped around to step 0.
  std::vector<StepSpec> again(2);
  absl::Status wrapped = ApplyDtmCustomData(R"({"concurrent":true,"orders":{"1":[4294967296]}})",
                                            "custom_data", TransType::kSaga, again, o);
  EXPECT_EQ(wrapped.code(), absl::StatusCode::kInvalidArgument);
}

TEST(DtmJsonTest, WritesQueryAndAllInDtmsShape) {
  Transaction t;
  t.gid = "g1";
  t.trans_type = TransType::kSaga;
  t.status = GlobalStatus::kSucceeded;
  t.create_time = absl::FromUnixSeconds(1714557600);
  t.finish_time = t.create_time + absl::Milliseconds(1500);
  Branch b;
  b.branch_id = "01";
  b.op = BranchOp::kAction;
  b.target = "http://busi/TransOut";
  b.payload = "{\"amount\":30}";
  b.status = BranchStatus::kSucceeded;
  t.branches.push_back(b);
  json q = json::parse(DtmQueryJson(&t));
  EXPECT_EQ(q["transaction"]["gid"], "g1");
  EXPECT_EQ(q["transaction"]["status"], "succeed");
  EXPECT_EQ(q["transaction"]["trans_type"], "saga");
  EXPECT_EQ(q["transaction"]["create_time"], "2024-05-01T10:00:00Z");
  EXPECT_EQ(q["transaction"]["finish_time"], "2024-05-01T10:00:01.5Z");
  EXPECT_EQ(q["branches"][0]["url"], "http://busi/TransOut");
  EXPECT_EQ(q["branches"][0]["bin_data"], "eyJhbW91bnQiOjMwfQ==");
  EXPECT_EQ(q["branches"][0]["op"], "action");
  EXPECT_EQ(q["branches"][0]["status"], "succeed");
  json none = json::parse(DtmQueryJson(nullptr));
  EXPECT_TRUE(none["transaction"].is_null());
  EXPECT_TRUE(none["branches"].empty());
  ListPage page;
  page.transactions.push_back(t);
  page.next_page_token = "next";
  json all = json::parse(DtmListJson(page));
  EXPECT_EQ(all["next_position"], "next");
  EXPECT_EQ(all["transactions"][0]["gid"], "g1");
  EXPECT_EQ(json::parse(DtmSuccessJson("gid", "x")),
            json::parse(R"({"dtm_result":"SUCCESS","gid":"x"})"));
}

}  // namespace
}  // namespace dtm
