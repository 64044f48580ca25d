// Log: dtmd's structured log lines on stderr, as text or as one JSON object per line
// (--log_format), filtered by level (--log_level). A line is a message and named fields:
//
//   Log(LogLevel::kInfo, "transaction status").Field("gid", gid).Field("status", "FAILED");
//
// text:  dtmd: transaction status gid=g1 status=FAILED
// json:  {"ts":"2026-11-30T14:00:00.123456Z","level":"info","msg":"transaction status",
//         "gid":"g1","status":"FAILED"}
//
// A text line starts with "dtmd: " (and "WARNING: " / "ERROR: " above info), as dtmd's lines
// always did, so tools reading them keep working; a field value with a space or a quote is
// quoted. Payloads are never logged: callers pass identifiers, statuses and error texts only.
//
// Thread-safe: a line is formatted apart and written whole, so lines from several threads never
// interleave (a line break inside a text message is written as "\n"). The level and format are
// process-wide (set once, at start).
//
// Between StartAsyncLog and StopAsyncLog (dtmd's main), a line only goes into a buffer that a
// thread of its own writes out: logging never blocks the thread that logs (the store's writer and
// completion threads among them) on a slow stderr reader. If the reader falls 4 MiB behind, lines
// are dropped and a warning says how many. An error line is written before Log returns (after what
// was buffered): it may be the last before the process aborts.
#ifndef DTM_SERVER_RUNTIME_LOG_H_
#define DTM_SERVER_RUNTIME_LOG_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dtm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// Parses "debug", "info", "warning" (or "warn"), "error"; "text", "json". INVALID_ARGUMENT
// naming the flag and the value otherwise.
absl::Status ParseLogLevel(absl::string_view text, LogLevel* level);
absl::Status ParseLogFormat(absl::string_view text, LogFormat* format);

// Sets the process-wide level and format (default: info, text).
void ConfigureLog(LogLevel level, LogFormat format);
bool LogEnabled(LogLevel level);

// Where lines go (default: stderr's file descriptor); for tests.
void SetLogSink(void (*sink)(const std::string& line));

// Starts the log's writer thread; StopAsyncLog writes what is buffered and joins it. Lines
// logged outside the two are written synchronously.
void StartAsyncLog();
void StopAsyncLog();

// One log line, written when it goes out of scope (if its level is enabled).
class Log {
 public:
  Log(LogLevel level, absl::string_view message);
  // A line written whatever --log_level says: the lines that say where dtmd serves, which
  // operators and tools (tests, benchmarks, scripts waiting for the port) read at any level.
  struct Always {};
  Log(Always, LogLevel level, absl::string_view message);
  ~Log();  // writes the line; never throws (a line that cannot be formatted is lost)
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Adds a field; an empty string value is left out (so optional fields cost nothing).
  Log& Field(absl::string_view key, absl::string_view value);
  Log& Field(absl::string_view key, const char* value) {
    return Field(key, absl::string_view(value));
  }
  Log& Field(absl::string_view key, const std::string& value) {
    return Field(key, absl::string_view(value));
  }
  Log& Field(absl::string_view key, int64_t value);
  Log& Field(absl::string_view key, int value) { return Field(key, static_cast<int64_t>(value)); }
  Log& Field(absl::string_view key, uint64_t value) {
    return Field(key, static_cast<int64_t>(value));
  }

 private:
  void Emit() const;

  const LogLevel level_;
  const bool enabled_;
  std::string message_;
  // Each value with whether it is a number (unquoted in JSON).
  std::vector<std::pair<std::string, std::pair<std::string, bool>>> fields_;
};

// A line without fields.
void LogLine(LogLevel level, absl::string_view message);

}  // namespace dtm

#endif  // DTM_SERVER_RUNTIME_LOG_H_
