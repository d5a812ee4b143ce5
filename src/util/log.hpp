// log.hpp: minimal leveled logging to stderr, one line per call.
//
// Threads: safe from any thread (each line is written with one fprintf).
#pragma once

#include <cstdarg>

namespace mailbox {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
bool parse_log_level(const char* text, LogLevel* level);
void log_message(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace mailbox

#define log_debug(...) ::mailbox::log_message(::mailbox::LogLevel::kDebug, __VA_ARGS__)
#define log_info(...) ::mailbox::log_message(::mailbox::LogLevel::kInfo, __VA_ARGS__)
#define log_warn(...) ::mailbox::log_message(::mailbox::LogLevel::kWarn, __VA_ARGS__)
#define log_error(...) ::mailbox::log_message(::mailbox::LogLevel::kError, __VA_ARGS__)
