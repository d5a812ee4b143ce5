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
inline constexpr uint64_t kDefaultMaxTotalMessages = 10'000'000;

// Idempotency: how long and how many rid records are kept (SPEC: 5 minutes).
inline constexpr int64_t kDefaultDedupWindowMs = 5LL * 60 * 1000;
inline constexpr uint64_t kDefaultMaxDedupEntries = 100'000;
// Leases: deliveries before a message moves to its dead-letter mailbox.
inline constexpr uint32_t kDefaultMaxDeliveries = 5;
inline constexpr int64_t kMaxLeaseMs = 12LL * 60 * 60 * 1000;
// Dead letters of mailbox X go to X + kDeadLetterSuffix.
inline constexpr const char* kDeadLetterSuffix = ".dlq";
inline constexpr size_t kDeadLetterSuffixBytes = 4;
// Long-poll: the longest wait= by default, and how many queries may wait at once.
inline constexpr int64_t kDefaultMaxWaitMs = 5LL * 60 * 1000;
inline constexpr size_t kMaxParkedWaiters = 10'000;
// Fire-and-forget publications remembered (by id) to store each at most once.
inline constexpr int64_t kPublicationDedupWindowMs = 30'000;
inline constexpr size_t kMaxPublicationDedupEntries = 1'000'000;
// Distinct encodings interned by the state (more are stored per message).
inline constexpr size_t kMaxInternedEncodings = 1024;
// Longest idempotency key.
inline constexpr size_t kMaxRidBytes = 128;

// Most log entries kept after a snapshot (RaftNodeOptions::snapshot_trailing_bytes).
inline constexpr unsigned kMaxTrailingEntries = 65536;

// Replication batching: commands packed into one Raft log entry.
inline constexpr size_t kMaxCommandsPerEntry = 4096;
inline constexpr size_t kMaxEntryBytes = 4 * 1024 * 1024;
// A follower that sees no leader's liveliness token holds a query this long
// before answering `unavailable` (at most this many at once).
inline constexpr int64_t kLeaderTokenGraceMs = 300;
// ... and, if asking the network for leader tokens takes longer, this long
// at most.
inline constexpr int64_t kMaxUndecidedHoldMs = 2000;
inline constexpr size_t kMaxUndecidedQueries = 10'000;
// A follower that receives a publication while it sees no leader's token
// (its router may not reach the leader yet: a node that just started, or a
// change of leader) holds it and forwards it to the leader once a token
// shows, for at most this long, this many and this many bytes; the leader
// stores it once (publication ids). Beyond that it is dropped and counted.
inline constexpr int64_t kMaxPublicationHoldMs = 5'000;
inline constexpr size_t kMaxHeldPublications = 10'000;
inline constexpr size_t kMaxHeldPublicationBytes = 64 * 1024 * 1024;
// Requests admitted but not yet answered, across the whole server.
inline constexpr size_t kMaxInflightRequests = 65536;

}  // namespace mailbox::limits
