// replies.hpp: the wire shapes of replies (docs/PROTOCOL.md), as pure
// formatting functions.
//
//  - one message: payload = the bytes put, encoding = the encoding put,
//    attachment = {"id","mailbox","enqueued_at","deliveries"}
//  - a batch (the query had n=): ONE reply whose payload is the messages'
//    payloads concatenated in FIFO order and whose attachment lists each
//    message's metadata and size, so default consolidation loses nothing
//  - acknowledged put: {"id":"<id>"}; stats: a JSON object
//  - errors: {"code","message"}
//
// Threads: pure; safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "core/state_machine.hpp"

namespace mailbox {

inline constexpr std::string_view kJsonEncoding = "application/json";
inline constexpr std::string_view kBatchEncoding = "application/x-mailbox-batch";

void append_json_string(std::string& out, std::string_view s);

std::string message_attachment(const DeliveredMessage& m);
// The concatenated payloads and the batch attachment.
void batch_reply(std::string_view mailbox, const std::vector<DeliveredMessage>& messages, std::string* payload,
                 std::string* attachment);
std::string put_reply(uint64_t id);
// extend: {"id":"<id>","lease_expires_at":<Unix ms>}
std::string extend_reply(uint64_t id, int64_t lease_expires_at_ms);
// purge, redrive: {"<name>":<count>}
std::string count_reply(std::string_view name, uint64_t count);
std::string stats_reply(std::string_view mailbox, const MailboxStats& stats);
std::string error_reply(const Status& status);

}  // namespace mailbox
