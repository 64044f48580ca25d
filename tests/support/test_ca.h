// Certificates for TLS tests, made by the openssl command line in a test's own directory.
#ifndef DTM_TESTS_SUPPORT_TEST_CA_H_
#define DTM_TESTS_SUPPORT_TEST_CA_H_

#include <string>

namespace dtm::test {

// In `dir`, with `prefix` before every name (so that one directory can hold two CAs):
//   ca.pem, ca.key    a CA ("dtm test CA <prefix>")
//   srv.pem, srv.key  a server certificate for 127.0.0.1 and localhost, signed by it
//   cli.pem, cli.key  a client certificate (CN "test-client"), signed by it
// False if openssl failed.
bool MakeTestCa(const std::string& dir, const std::string& prefix = "");

}  // namespace dtm::test

#endif  // DTM_TESTS_SUPPORT_TEST_CA_H_
