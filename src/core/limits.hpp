// limits.hpp: every fixed limit of the service, as a named constant with its
// unit in its name. Configurable limits take their defaults from here.
//
// Threads: constants only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mailbox::limits {

// Mailbox names: 1..128 bytes of [A-Za-z0-9._~+=@-], not starting with '@' or '.'.
inline constexpr size_t kMaxMailboxNameBytes = 128;
// Default largest payload of one message (SPEC: 1 MiB).
inline constexpr size_t kDefaultMaxPayloadBytes = 1024 * 1024;
// Hard ceiling for the payload limit flag: one message must fit in one log entry.
inline constexpr size_t kMaxPayloadBytesCeiling = 16 * 1024 * 1024;
// Largest encoding string stored with a message.
inline constexpr size_t kMaxEncodingBytes = 256;
// Most messages one consume or peek may return (SPEC: n=1..1000).
inline constexpr uint32_t kMaxBatchMessages = 1000;
// Longest selector parameter string accepted.
inline constexpr size_t kMaxParametersBytes = 1024;
// Default time to live of a message (SPEC: 24h).
inline constexpr int64_t kDefaultTtlMs = 24LL * 60 * 60 * 1000;
// Longest time to live a put may ask for (one year).
inline constexpr int64_t kMaxTtlMs = 366LL * 24 * 60 * 60 * 1000;

// Default quotas; a quota refuses new work, it never drops stored messages.
inline constexpr uint64_t kDefaultMaxMessagesPerMailbox = 1'000'000;
inline constexpr uint64_t kDefaultMaxBytesPerMailbox = 1ULL << 30;    // 1 GiB
inline constexpr uint64_t kDefaultMaxTotalBytes = 4ULL << 30;         // 4 GiB

// Replication batching: commands packed into one Raft log entry.
inline constexpr size_t kMaxCommandsPerEntry = 4096;
inline constexpr size_t kMaxEntryBytes = 32 * 1024 * 1024;
// Requests admitted but not yet answered, across the whole server.
inline constexpr size_t kMaxInflightRequests = 65536;

}  // namespace mailbox::limits
