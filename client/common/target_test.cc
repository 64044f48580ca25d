#include "client/common/target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dtm {
namespace {

using ::testing::HasSubstr;

TEST(TargetTest, ParsesHostPortAndMethod) {
  auto t = ParseGrpcTarget("localhost:50051/bank.Bank/TransOut", "f");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->authority, "localhost:50051");
  EXPECT_EQ(t->method, "/bank.Bank/TransOut");
  auto g = ParseGrpcTarget("grpc://10.0.0.1:9/a.B/C", "f");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->authority, "10.0.0.1:9");
  auto v6 = ParseGrpcTarget("[::1]:8080/a.B/C", "f");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->authority, "[::1]:8080");
}

TEST(TargetTest, RejectsMalformedTargetsNamingTheField) {
  for (const char* bad :
       {"", "localhost:50051", "localhost/a.B/C", "host:0/a.B/C", "host:99999/a.B/C",
        "host:x/a.B/C", "host:1/a.B", "host:1//C", "host:1/a.B/", "host:1/a.B/C/D",
        "http://host:1/x", ":1/a.B/C", "[::::::]:1/a.B/C", "999.999.999.999:1/a.B/C",
        "1.2.3:1/a.B/C", "[fe80::1%eth0]:1/a.B/C"}) {
    auto t = ParseGrpcTarget(bad, "steps[3].action");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("steps[3].action"));
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(std::string("'") + bad + "'"));
  }
}

TEST(TargetTest, AcceptsIpLiteralsThatAreAddressesAndNamesWithDigits) {
  for (const char* good : {"10.1.2.3:1/a.B/C", "[::1]:1/a.B/C", "[::ffff:10.1.2.3]:1/a.B/C",
                           "db1.svc-2.example:1/a.B/C", "123.example:1/a.B/C"}) {
    EXPECT_TRUE(ParseGrpcTarget(good, "f").ok()) << good;
  }
  EXPECT_FALSE(ParseHttpTarget("http://300.1.1.1/x", "f").ok());
  EXPECT_FALSE(ParseHttpTarget("http://[1:2:3]/x", "f").ok());
}

TEST(TargetTest, ParsesHttpUrls) {
  auto t = ParseHttpTarget("http://busi.svc:8081/api/TransOut?x=1&y=2", "f");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->https);
  EXPECT_EQ(t->host, "busi.svc");
  EXPECT_EQ(t->port, 8081);
  EXPECT_EQ(t->path, "/api/TransOut?x=1&y=2");
  auto s = ParseHttpTarget("HTTPS://10.1.2.3", "f");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->https);
  EXPECT_EQ(s->port, 443);
  EXPECT_EQ(s->path, "/");
  auto v6 = ParseHttpTarget("http://[::1]:80?q=1", "f");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "[::1]");
  EXPECT_EQ(v6->path, "/?q=1");
  EXPECT_TRUE(IsHttpTarget("Http://x"));
  EXPECT_FALSE(IsHttpTarget("localhost:1/a.B/C"));
  EXPECT_TRUE(ValidateTarget("http://localhost:8081/x", "f").ok());
  EXPECT_TRUE(ValidateTarget("localhost:50051/a.B/C", "f").ok());
}

TEST(TargetTest, RejectsMalformedUrlsNamingTheFieldAndWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://", "no valid host"},
      {"http:///path", "no valid host"},
      {"http://user:pw@host/x", "user:password@"},
      {"http://host/x#frag", "#fragment"},
      {"http://host:0/x", "1..65535"},
      {"http://host:65536/x", "1..65535"},
      {"http://host:8o/x", "1..65535"},
      {"http://ho st/x", "space"},
      {"http://-host/x", "no valid host"},
      {"http://host_name/x", "no valid host"},
  };
  for (const auto& [url, why] : cases) {
    absl::Status st = ValidateTarget(url, "steps[0].action");
    ASSERT_FALSE(st.ok()) << url;
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(st.message()), HasSubstr("steps[0].action"));
    EXPECT_THAT(std::string(st.message()), HasSubstr(std::string("'") + url + "'"));
    EXPECT_THAT(std::string(st.message()), HasSubstr(why)) << url;
  }
}

TEST(TargetTest, AcceptsOnlyTcpEndpointsSpelledOneWay) {
  // Schemes that would make the coordinator reach something else than a TCP port by name or
  // IP literal, and spellings that would give one endpoint many channels.
  const std::pair<std::string, const char*> cases[] = {
      {"unix:/run/x.sock/a.B/C", "scheme 'unix:'"},
      {"unix-abstract:sock/a.B/C", "scheme 'unix-abstract:'"},
      {"vsock:2:80/a.B/C", "no valid host"},
      {"ipv4:127.0.0.1:80,10.0.0.1:80/a.B/C", "no valid host"},
      {"ipv6:[::1]:80/a.B/C", "no valid host"},
      {"dns://8.8.8.8/host:80/a.B/C", "scheme 'dns:'"},
      {"host:+40121/a.B/C", "1..65535"},
      {"host:0040121/a.B/C", "1..65535"},
      {"host:-1/a.B/C", "1..65535"},
      {"ho st:1/a.B/C", "space"},
      {"host\n:1/a.B/C", "control"},
      {"user@host:1/a.B/C", "no valid host"},
      {"ho%00st:1/a.B/C", "no valid host"},
      {"-host:1/a.B/C", "no valid host"},
      {"a..b:1/a.B/C", "no valid host"},
      {"[::1%25eth0]:1/a.B/C", "no valid host"},
      {std::string(300, 'a') + ":1/a.B/C", "no valid host"},
      {"h:1/a.B/C%0a", "outside [A-Za-z0-9_.]"},
      {"h:1/" + std::string(kMaxTargetLength, 'a') + "/C", "more than 2048"},
      {"http://host:+80/x", "1..65535"},
      {"http://host:080/x", "1..65535"},
      {"http://ho%00st/x", "no valid host"},
      {"http://h\xC3\xA9/x", "non-ASCII"},
      {"http://x/" + std::string(kMaxTargetLength, 'a'), "more than 2048"},
  };
  for (const auto& [target, why] : cases) {
    absl::Status st = ValidateTarget(target, "steps[0].action");
    ASSERT_FALSE(st.ok()) << target;
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(st.message()), HasSubstr("steps[0].action '"));
    EXPECT_THAT(std::string(st.message()), HasSubstr(why)) << target;
    EXPECT_LT(st.message().size(), 400u) << "a long value is cut in the message";
  }
}

TEST(TargetTest, NormalisesTheAuthorityAndKeepsTheBalancedScheme) {
  auto a = ParseGrpcTarget("Busi.Example.COM:8080/a.B/C", "f");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->authority, "busi.example.com:8080");
  EXPECT_EQ(a->ChannelTarget(), "busi.example.com:8080");
  EXPECT_FALSE(a->balanced);
  auto b = ParseGrpcTarget("dns:///busi.ns.svc.cluster.local:50051/bank.Bank/TransIn", "f");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->balanced);
  EXPECT_EQ(b->authority, "busi.ns.svc.cluster.local:50051");
  EXPECT_EQ(b->ChannelTarget(), "dns:///busi.ns.svc.cluster.local:50051");
  auto h = ParseHttpTarget("http://LOCALHOST:8081/Api/X", "f");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->host, "localhost");
  EXPECT_EQ(h->path, "/Api/X");
  EXPECT_TRUE(ParseGrpcTarget("fqdn.example.:1/a.B/C", "f").ok());
  EXPECT_EQ(QuoteForError("a\nb"), "a\\nb");
  EXPECT_EQ(QuoteForError(std::string(150, 'x')), std::string(100, 'x') + "...");
}

TEST(TargetTest, GrpcsMeansTlsOnItsOwnChannel) {
  auto s = ParseGrpcTarget("grpcs://Busi.Example.com:443/a.B/C", "f");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->tls);
  EXPECT_FALSE(s->balanced);
  EXPECT_EQ(s->ChannelTarget(), "busi.example.com:443");
  auto plain = ParseGrpcTarget("busi.example.com:443/a.B/C", "f");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls);
  // The same address in plaintext and over TLS: two channels, never one shared.
  EXPECT_NE(s->ChannelKey(), plain->ChannelKey());
  EXPECT_EQ(ParseGrpcTarget("grpcs:///h:1/a.B/C", "f").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseGrpcTarget("grpcx://h:1/a.B/C", "f").status().message(),
              ::testing::HasSubstr("only grpc://, grpcs:// and dns:///"));
}

}  // namespace
}  // namespace dtm
