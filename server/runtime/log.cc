#include "server/runtime/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/runtime/thread_name.h"

namespace dtm {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::atomic<void (*)(const std::string&)> g_sink{nullptr};

void WriteStderr(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// The buffer between the threads that log and the one that writes (StartAsyncLog).
class AsyncLog {
 public:
  static constexpr size_t kMaxBytes = 4 << 20;

  // Writes what is buffered and then `line`, before returning: for a line that may be the last
  // before the process aborts. False when no writer thread runs.
  bool WriteNow(const std::string& line) {
    absl::MutexLock lock(&mu_);
    if (!running_) return false;
    WriteStderr(buffer_);
    buffer_.clear();
    WriteStderr(line);
    return true;
  }

  // False when no writer thread runs: the caller writes the line itself.
  bool Append(const std::string& line) {
    absl::MutexLock lock(&mu_);
    if (!running_) return false;
    if (buffer_.size() + line.size() > kMaxBytes) {
      ++dropped_;
    } else {
      buffer_ += line;
    }
    return true;
  }

  void Start() {
    absl::MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
    stop_ = false;
    thread_ = std::thread([this] {
      NameThisThread("dtm-log");
      Run();
    });
  }

  // Lines logged from here on are written by their own threads; the writer drains what was
  // buffered before and ends.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (!running_) return;
      running_ = false;
      stop_ = true;
    }
    thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      std::string out;
      int64_t dropped = 0;
      bool stop = false;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stop_ || !buffer_.empty() || dropped_ > 0;
        };
        mu_.Await(absl::Condition(&ready));
        out.swap(buffer_);
        dropped = dropped_;
        dropped_ = 0;
        stop = stop_;
      }
      WriteStderr(out);
      if (dropped > 0) {
        WriteStderr(absl::StrCat("dtmd: WARNING: ", dropped,
                                 " log line(s) dropped: stderr was not read fast enough\n"));
      }
      if (stop) return;  // the buffer was taken with stop_ set: nothing is left
    }
  }

  absl::Mutex mu_;
  std::string buffer_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

AsyncLog& Async() {
  static auto* async = new AsyncLog();  // never destroyed: threads may log until exit
  return *async;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

// A text field value: as is, or quoted with \" \\ and control characters escaped.
std::string TextValue(absl::string_view v) {
  if (!NeedsQuotes(v)) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

absl::Status ParseLogLevel(absl::string_view text, LogLevel* level) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "debug") {
    *level = LogLevel::kDebug;
  } else if (t == "info") {
    *level = LogLevel::kInfo;
  } else if (t == "warning" || t == "warn") {
    *level = LogLevel::kWarning;
  } else if (t == "error") {
    *level = LogLevel::kError;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level '", text, "' is not debug, info, warning or error"));
  }
  return absl::OkStatus();
}

absl::Status ParseLogFormat(absl::string_view text, LogFormat* format) {
  if (text == "text") {
    *format = LogFormat::kText;
  } else if (text == "json") {
    *format = LogFormat::kJson;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format '", text, "' is not text or json"));
  }
  return absl::OkStatus();
}

void ConfigureLog(LogLevel level, LogFormat format) {
  g_level.store(static_cast<int>(level));
  g_format.store(static_cast<int>(format));
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void SetLogSink(void (*sink)(const std::string& line)) { g_sink.store(sink); }

void StartAsyncLog() { Async().Start(); }

void StopAsyncLog() { Async().Stop(); }

Log::Log(LogLevel level, absl::string_view message) : level_(level), enabled_(LogEnabled(level)) {
  if (enabled_) message_ = std::string(message);
}

Log::Log(Always, LogLevel level, absl::string_view message)
    : level_(level), enabled_(true), message_(message) {}

Log& Log::Field(absl::string_view key, absl::string_view value) {
  if (enabled_ && !value.empty()) {
    fields_.emplace_back(std::string(key), std::make_pair(std::string(value), false));
  }
  return *this;
}

Log& Log::Field(absl::string_view key, int64_t value) {
  if (enabled_) fields_.emplace_back(std::string(key), std::make_pair(absl::StrCat(value), true));
  return *this;
}

Log::~Log() {
  if (!enabled_) return;
  try {
    Emit();
  } catch (...) {  // out of memory, or a JSON error: the line is lost, never the process
  }
}

void Log::Emit() const {
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    nlohmann::ordered_json j;
    j["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
    j["level"] = LevelName(level_);
    j["msg"] = message_;
    for (auto& [key, value] : fields_) {
      int64_t n = 0;
      if (value.second && absl::SimpleAtoi(value.first, &n)) {
        j[key] = n;
      } else {
        j[key] = value.first;
      }
    }
    // Invalid UTF-8 (an error text from a branch) is replaced, never a reason to lose a line.
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = "dtmd: ";
    if (level_ == LogLevel::kWarning) line += "WARNING: ";
    if (level_ == LogLevel::kError) line += "ERROR: ";
    // A message may quote another library's text: no line breaks that would forge lines.
    for (char c : message_) {
      if (c == '\n') {
        line += "\\n";
      } else if (static_cast<unsigned char>(c) < 0x20) {
        line += ' ';
      } else {
        line += c;
      }
    }
    for (auto& [key, value] : fields_)
      absl::StrAppend(&line, " ", key, "=", TextValue(value.first));
  }
  line += '\n';
  auto* sink = g_sink.load();
  if (sink != nullptr) {
    sink(line);
  } else if (level_ >= LogLevel::kError ? !Async().WriteNow(line) : !Async().Append(line)) {
    WriteStderr(line);
  }
}

void LogLine(LogLevel level, absl::string_view message) { Log line(level, message); }

}  // namespace dtm
