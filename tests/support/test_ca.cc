#include "tests/support/test_ca.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dtm::test {

bool MakeTestCa(const std::string& dir, const std::string& prefix) {
  const std::string p = prefix;
  // One certificate signed by the CA: `name`.pem/.key with subject CN `cn` and `ext`.
  auto sign = [&](const std::string& name, const std::string& cn, const std::string& ext) {
    return absl::StrCat(" && openssl req -newkey rsa:2048 -nodes -keyout ", p, name, ".key -out ",
                        p, name, ".csr -subj '/CN=", cn, "' 2>/dev/null", " && printf '", ext,
                        "' > ", p, name, ".ext", " && openssl x509 -req -in ", p, name, ".csr -CA ",
                        p, "ca.pem -CAkey ", p, "ca.key -CAcreateserial -out ", p, name,
                        ".pem -days 2 -extfile ", p, name, ".ext 2>/dev/null");
  };
  std::string command =
      absl::StrCat("cd '", dir, "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ", p,
                   "ca.key -out ", p, "ca.pem -days 2 -subj '/CN=dtm test CA ", p, "' 2>/dev/null",
                   sign("srv", "127.0.0.1",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth"),
                   sign("cli", "test-client", "extendedKeyUsage=clientAuth"));
  return std::system(command.c_str()) == 0;
}

}  // namespace dtm::test
