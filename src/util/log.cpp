#include "util/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace mailbox {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
constexpr size_t kMaxLogLineBytes = 2048;
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool parse_log_level(const char* text, LogLevel* level) {
  if (std::strcmp(text, "debug") == 0) *level = LogLevel::kDebug;
  else if (std::strcmp(text, "info") == 0) *level = LogLevel::kInfo;
  else if (std::strcmp(text, "warn") == 0) *level = LogLevel::kWarn;
  else if (std::strcmp(text, "error") == 0) *level = LogLevel::kError;
  else return false;
  return true;
}

void log_message(LogLevel level, const char* format, ...) {
  if (static_cast<int>(level) < g_level.load()) return;
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  char line[kMaxLogLineBytes];
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const int millis = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis,
                        kNames[static_cast<int>(level)]);
  va_list args;
  va_start(args, format);
  if (n > 0 && static_cast<size_t>(n) < sizeof line) std::vsnprintf(line + n, sizeof line - n, format, args);
  va_end(args);
  std::fprintf(stderr, "%s\n", line);
}

}  // namespace mailbox
