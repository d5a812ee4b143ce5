// log.hpp: leveled logging to stderr, one line per call, as text or as
// JSON (mailboxd --log-format json: one object per line with ts, level,
// component, msg, and mailbox and op for lines about a request).
//
// A line's component is the module that logged it, taken from its source
// path (src/replication/... is "replication", src/server/... "server",
// the programs their own names). Lines about a request name its mailbox and
// operation (log_request_*); no line ever carries a payload or a token.
//
// Threads: safe from any thread (each line is written with one fprintf).
// The level and format are set once at start, before other threads run.
#pragma once

#include <cstdarg>

namespace mailbox {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText = 0, kJson = 1 };

void set_log_level(LogLevel level);
bool parse_log_level(const char* text, LogLevel* level);
void set_log_format(LogFormat format);
bool parse_log_format(const char* text, LogFormat* format);
bool log_enabled(LogLevel level);

// `source`: the caller's __FILE__; `op` and `mailbox` may be null.
void log_line(LogLevel level, const char* source, const char* op, const char* mailbox, const char* format, ...)
    __attribute__((format(printf, 5, 6)));
// The line as it would be written (no newline), for tests.
void format_log_line(char* out, unsigned long capacity, LogLevel level, const char* source, const char* op,
                     const char* mailbox, const char* format, va_list args);

}  // namespace mailbox

#define log_debug(...) ::mailbox::log_line(::mailbox::LogLevel::kDebug, __FILE__, nullptr, nullptr, __VA_ARGS__)
#define log_info(...) ::mailbox::log_line(::mailbox::LogLevel::kInfo, __FILE__, nullptr, nullptr, __VA_ARGS__)
#define log_warn(...) ::mailbox::log_line(::mailbox::LogLevel::kWarn, __FILE__, nullptr, nullptr, __VA_ARGS__)
#define log_error(...) ::mailbox::log_line(::mailbox::LogLevel::kError, __FILE__, nullptr, nullptr, __VA_ARGS__)
// A line about a request on `mailbox` (const char*) with operation `op`.
#define log_request_debug(op_name, box_name, ...) \
  ::mailbox::log_line(::mailbox::LogLevel::kDebug, __FILE__, op_name, box_name, __VA_ARGS__)
#define log_request_warn(op_name, box_name, ...) \
  ::mailbox::log_line(::mailbox::LogLevel::kWarn, __FILE__, op_name, box_name, __VA_ARGS__)
