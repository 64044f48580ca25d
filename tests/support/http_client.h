// HttpClient: a blocking HTTP/1.1 client for tests (libcurl's easy interface), one keep-alive
// connection per instance. Not thread-safe: one per thread.
#ifndef DTM_TESTS_SUPPORT_HTTP_CLIENT_H_
#define DTM_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <string>
#include <utility>

#include "absl/time/time.h"

namespace dtm::test {

struct HttpResult {
  long status = 0;  // 0: no answer (see error)
  std::string body;
  std::string error;  // libcurl's, when there was no answer
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult Get(const std::string& url, absl::Duration timeout = absl::Seconds(30));
  HttpResult Post(const std::string& url, const std::string& body,
                  absl::Duration timeout = absl::Seconds(30));
  // Sent with every later request, e.g. "Authorization: Bearer t"; "" sends none.
  void set_header(std::string header) { header_ = std::move(header); }
  // HTTPS: the server is verified against `ca_file`; with `cert_file` and `key_file`, this
  // client certificate is presented.
  void set_tls(std::string ca_file, std::string cert_file = "", std::string key_file = "") {
    ca_file_ = std::move(ca_file);
    cert_file_ = std::move(cert_file);
    key_file_ = std::move(key_file);
  }
  // Any method, e.g. "DELETE".
  HttpResult Do(const std::string& method, const std::string& url, const std::string& body,
                absl::Duration timeout);

 private:
  void* curl_;  // CURL*
  std::string header_;
  std::string ca_file_;
  std::string cert_file_;
  std::string key_file_;
};

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_HTTP_CLIENT_H_
