// HttpServer against real sockets: libcurl as a well-behaved client, raw TCP for the others.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace dtm {
namespace {

using ::testing::HasSubstr;

struct Reply {
  long status = 0;
  std::string body;
  std::string headers;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One libcurl handle: consecutive requests reuse its connection (keep-alive).
class Client {
 public:
  Client() : curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }
  Reply Do(const std::string& method, const std::string& url, const std::string& body = "",
           const std::string& header = "") {
    Reply r;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    struct curl_slist* headers = nullptr;
    if (!header.empty()) headers = curl_slist_append(headers, header.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, Append);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(curl_);
    if (rc == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    } else {
      r.body = curl_easy_strerror(rc);
    }
    curl_slist_free_all(headers);
    return r;
  }

 private:
  CURL* curl_;
};

// A raw TCP connection to the server.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits up to `timeout` for the server to close `fd` (read returns 0 or an error).
bool ClosedByServer(int fd, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return true;
  }
  return false;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Handle("GET", "/echo", [](HttpRequest req, const HttpResponder& respond) {
      HttpResponse r;
      r.body = absl::StrCat(req.method, " ", req.path, " a=", req.Param("a"), " b=", req.Param("b"),
                            " x-test=", req.headers["x-test"]);
      respond(std::move(r));
    });
    router_.Handle("POST", "/echo", [](const HttpRequest& req, const HttpResponder& respond) {
      HttpResponse r;
      r.status = 201;
      r.body = req.body;
      respond(std::move(r));
    });
    router_.Handle("POST", "/later", [this](const HttpRequest& req, HttpResponder respond) {
      absl::MutexLock lock(&mu_);
      pending_.push_back(std::move(respond));
    });
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(1));
  }
  void Start(HttpServerOptions o = {}) {
    o.listen = "127.0.0.1:0";
    auto s = HttpServer::Start(o, &router_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  std::string Url(const std::string& path) {
    return absl::StrCat("http://127.0.0.1:", server_->port(), path);
  }
  // Waits for a request to /later and returns its responder.
  HttpResponder TakeLater() {
    absl::MutexLock lock(&mu_);
    auto has = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !pending_.empty(); };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&has), absl::Seconds(10)));
    if (pending_.empty()) return [](const HttpResponse&) {};
    HttpResponder r = std::move(pending_.front());
    pending_.erase(pending_.begin());
    return r;
  }

  HttpRouter router_;
  std::unique_ptr<HttpServer> server_;
  absl::Mutex mu_;
  std::vector<HttpResponder> pending_ ABSL_GUARDED_BY(mu_);
};

TEST_F(HttpServerTest, RoutesDecodesAndKeepsTheConnectionAlive) {
  Start();
  Client c;
  Reply r = c.Do("GET", Url("/echo?a=1%202&b=x+y&a=ignored"), "", "X-Test: yes");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /echo a=1 2 b=x y x-test=yes");
  EXPECT_THAT(r.headers, HasSubstr("Content-Type: application/json"));
  Reply post = c.Do("POST", Url("/echo"), "{\"k\":1}");
  EXPECT_EQ(post.status, 201);
  EXPECT_EQ(post.body, "{\"k\":1}");
  EXPECT_EQ(server_->connections(), 1);  // both on one connection
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithJson) {
  Start();
  Client c;
  Reply missing = c.Do("GET", Url("/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "{\"message\":\"no such path: /nope\"}");
  Reply wrong = c.Do("DELETE", Url("/echo"));
  EXPECT_EQ(wrong.status, 405);
  EXPECT_THAT(wrong.body, HasSubstr("/echo takes GET or POST, not DELETE"));
  EXPECT_THAT(wrong.headers, HasSubstr("Allow: GET, POST"));
}

TEST_F(HttpServerTest, OversizedBodyIs413AndOversizedHeadersAre431) {
  HttpServerOptions o;
  o.max_body_bytes = 100;
  o.max_header_bytes = 1024;
  Start(o);
  Client c;
  Reply big = c.Do("POST", Url("/echo"), std::string(101, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_THAT(big.body, HasSubstr("larger than 100 bytes"));
  EXPECT_EQ(c.Do("POST", Url("/echo"), std::string(100, 'x')).status, 201);
  Reply headers = c.Do("GET", Url("/echo"), "", "X-Big: " + std::string(2000, 'h'));
  EXPECT_EQ(headers.status, 431);
}

TEST_F(HttpServerTest, AnswersFromAnotherThreadWhenTheHandlerIsDone) {
  Start();
  Reply r;
  std::thread client([&] { r = Client().Do("POST", Url("/later"), "x"); });
  HttpResponder respond = TakeLater();
  std::thread answerer([respond] {
    HttpResponse resp;
    resp.body = "done";
    respond(resp);
    respond(resp);  // a second answer is ignored
  });
  answerer.join();
  client.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "done");
}

TEST_F(HttpServerTest, SlowHeadersAreCutOff) {
  HttpServerOptions o;
  o.header_timeout = absl::Milliseconds(300);
  Start(o);
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "GET /echo HTTP/1.1\r\nHo", 22), 22);  // and nothing more
  EXPECT_TRUE(ClosedByServer(fd, absl::Seconds(10)));
  close(fd);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  HttpServerOptions o;
  o.max_connections = 2;
  Start(o);
  int a = Connect(server_->port());
  int b = Connect(server_->port());
  for (int i = 0; i < 1000 && server_->connections() < 2; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(server_->connections(), 2);
  int c = Connect(server_->port());
  EXPECT_TRUE(ClosedByServer(c, absl::Seconds(10)));
  EXPECT_EQ(server_->connections(), 2);
  close(a);
  close(b);
  close(c);
  // Room again once they are gone.
  for (int i = 0; i < 1000 && server_->connections() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(Client().Do("GET", Url("/echo")).status, 200);
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  Start();
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  std::string junk = "NOT HTTP AT ALL\r\n\r\n";
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  char buf[512] = {0};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n), HasSubstr("400 Bad Request"));
  close(fd);
}

TEST_F(HttpServerTest, ShutdownWaitsForTheAnswerInFlightThenStops) {
  Start();
  Reply r;
  std::thread client([&] { r = Client().Do("POST", Url("/later"), "x"); });
  HttpResponder respond = TakeLater();
  int idle = Connect(server_->port());
  absl::Notification stopped;
  std::thread stopper([&] {
    server_->Shutdown(absl::Seconds(10));
    stopped.Notify();
  });
  EXPECT_TRUE(ClosedByServer(idle, absl::Seconds(10)));  // idle: closed at once
  EXPECT_FALSE(stopped.HasBeenNotified());               // still waiting for the answer
  HttpResponse resp;
  resp.body = "late but answered";
  respond(resp);
  stopper.join();
  client.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "late but answered");
  EXPECT_LT(Connect(server_->port()), 0);  // no longer listening
  close(idle);
  server_.reset();
}

}  // namespace
}  // namespace dtm
