#include "util/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace mailbox {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
constexpr size_t kMaxLogLineBytes = 2048;
constexpr size_t kMaxLogMessageBytes = 1536;  // the message part, before escaping
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};

// The module of a source path: the directory under src/ ("replication"),
// or the program for src/cli/<name>_main.cpp.
std::string component_of(const char* source) {
  if (source == nullptr) return "mailbox";
  std::string path(source);
  const size_t src = path.rfind("src/");
  if (src == std::string::npos) return "mailbox";
  path = path.substr(src + 4);
  const size_t slash = path.find('/');
  if (slash == std::string::npos) return "mailbox";
  const std::string dir = path.substr(0, slash);
  const std::string file = path.substr(slash + 1);
  const size_t main = file.rfind("_main.cpp");
  if (dir == "cli" && main != std::string::npos) return file.substr(0, main);
  return dir;
}

void append_json_escaped(std::string& out, const char* text) {
  for (const char* p = text; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
void set_log_format(LogFormat format) { g_format.store(static_cast<int>(format)); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

bool parse_log_level(const char* text, LogLevel* level) {
  if (std::strcmp(text, "debug") == 0) *level = LogLevel::kDebug;
  else if (std::strcmp(text, "info") == 0) *level = LogLevel::kInfo;
  else if (std::strcmp(text, "warn") == 0) *level = LogLevel::kWarn;
  else if (std::strcmp(text, "error") == 0) *level = LogLevel::kError;
  else return false;
  return true;
}

bool parse_log_format(const char* text, LogFormat* format) {
  if (std::strcmp(text, "text") == 0) *format = LogFormat::kText;
  else if (std::strcmp(text, "json") == 0) *format = LogFormat::kJson;
  else return false;
  return true;
}

void format_log_line(char* out, unsigned long capacity, LogLevel level, const char* source, const char* op,
                     const char* mailbox, const char* format, va_list args) {
  char message[kMaxLogMessageBytes];
  std::vsnprintf(message, sizeof message, format, args);
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const int millis = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char ts[80];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  const char* level_name = kLevelNames[static_cast<int>(level)];
  std::string line;
  if (g_format.load() == static_cast<int>(LogFormat::kJson)) {
    line = std::string("{\"ts\":\"") + ts + "\",\"level\":\"" + level_name + "\",\"component\":\"";
    append_json_escaped(line, component_of(source).c_str());
    line += "\"";
    if (op) {
      line += ",\"op\":\"";
      append_json_escaped(line, op);
      line += "\"";
    }
    if (mailbox) {
      line += ",\"mailbox\":\"";
      append_json_escaped(line, mailbox);
      line += "\"";
    }
    line += ",\"msg\":\"";
    append_json_escaped(line, message);
    line += "\"}";
  } else {
    line = std::string(ts) + " " + level_name + " ";
    if (op) line += std::string("op=") + op + " ";
    if (mailbox) line += std::string("mailbox=") + mailbox + " ";
    line += message;
  }
  if (line.size() >= capacity) {
    // Never cut a JSON object into something that does not parse: say so.
    line = line.substr(0, capacity - 1);
    if (g_format.load() == static_cast<int>(LogFormat::kJson)) {
      line = std::string("{\"ts\":\"") + ts + "\",\"level\":\"" + level_name +
             "\",\"component\":\"log\",\"msg\":\"(a line too long to log)\"}";
    }
  }
  std::snprintf(out, capacity, "%s", line.c_str());
}

void log_line(LogLevel level, const char* source, const char* op, const char* mailbox, const char* format, ...) {
  if (!log_enabled(level)) return;
  char line[kMaxLogLineBytes];
  va_list args;
  va_start(args, format);
  format_log_line(line, sizeof line, level, source, op, mailbox, format, args);
  va_end(args);
  std::fprintf(stderr, "%s\n", line);
}

}  // namespace mailbox
