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
// Longest delay a put may ask for (SPEC v2: 366 days).
inline constexpr int64_t kMaxDelayMs = 366LL * 24 * 60 * 60 * 1000;
// Most messages one redrive may move (SPEC v2: n=1..100000).
inline constexpr uint32_t kMaxRedriveMessages = 100'000;
// Listing (SPEC v2 `get P/<pattern>/stats`): replies per page, default and most.
inline constexpr uint32_t kDefaultListLimit = 1000;
inline constexpr uint32_t kMaxListLimit = 10'000;

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
// Long-poll: the longest wait= by default, and how many queries may wait at
// once, parked on the leader (one per device of a mailbox per user).
inline constexpr int64_t kDefaultMaxWaitMs = 5LL * 60 * 1000;
inline constexpr size_t kMaxParkedWaiters = 100'000;
// The memory bound of one parked long-poll on the node, beyond the bytes of
// its query (key, parameters, attachment): our waiter, its reply callback
// and exchange, and Zenoh's state of a pending query. Measured 1.7 KiB of
// RSS each (1,752-1,776 bytes at 100,000 parked, queries of ~30 bytes;
// docs/BENCHMARKS.md, "Many waiting clients"); each parked long-poll is
// charged this plus its query's bytes against kMaxParkedWaiterBytes, so the
// parked long-polls of a node hold at most that much, whatever their
// attachments. A long-poll beyond either bound is answered `unavailable`.
inline constexpr size_t kParkedWaiterOverheadBytes = 2048;
inline constexpr uint64_t kMaxParkedWaiterBytes = 256ULL << 20;
// Fire-and-forget publications remembered (by id) to store each at most once.
inline constexpr int64_t kPublicationDedupWindowMs = 30'000;
inline constexpr size_t kMaxPublicationDedupEntries = 1'000'000;
// Distinct encodings interned by the state (more are stored per message).
inline constexpr size_t kMaxInternedEncodings = 1024;
// Longest idempotency key.
inline constexpr size_t kMaxRidBytes = 128;

// Most log entries kept after a snapshot (RaftNodeOptions::snapshot_trailing_bytes).
inline constexpr unsigned kMaxTrailingEntries = 65536;
// The log kept after a snapshot is at most the snapshot's size divided by
// this (and at most snapshot_trailing_bytes): a follower further behind
// than that catches up about as cheaply from the snapshot, and a small
// state (a million one-message mailboxes) does not keep 64 MiB of log in
// memory for it.
inline constexpr uint64_t kTrailingLogSnapshotFraction = 8;
// ...but never less than this many bytes (while snapshot_trailing_bytes
// allows): a small state's followers a few hundred entries behind still
// catch up from the log, not by an install; 4 MiB is noise beside a state
// large enough for the fraction to matter.
inline constexpr uint64_t kMinTrailingLogBytes = 4ULL << 20;
// A snapshot is taken after at least (stored messages / this) log entries
// (and at least DriverOptions::snapshot_threshold_entries), so the cost of
// walking a large state is spread over proportionally many entries.
inline constexpr uint64_t kSnapshotMessagesPerLogEntry = 16;

// Replication batching: commands packed into one Raft log entry.
inline constexpr size_t kMaxCommandsPerEntry = 4096;
inline constexpr size_t kMaxEntryBytes = 4 * 1024 * 1024;
// Forwarding: a node that does not lead hands its clients' requests to the
// leader over the Raft transport (docs/ARCHITECTURE.md).
// A request that finds no leader known waits this long for one (at most
// this many at once), then gets `unavailable`.
inline constexpr int64_t kMaxLeaderWaitMs = 3'000;
inline constexpr size_t kMaxWaitingForLeader = 10'000;
// A forwarded request not answered within this (plus its own long-poll
// wait) gets `unknown_outcome`.
inline constexpr int64_t kForwardTimeoutMs = 15'000;
// A status or membership request forwarded to another node: its timeout.
inline constexpr int64_t kAdminForwardTimeoutMs = 3'000;
// Forwarded requests waiting for their answer on one node: requests being
// worked on, plus long-polls (a long-poll handed to the leader waits here
// for its whole wait, while it is parked there).
inline constexpr size_t kMaxPendingForwards = 65'536 + kMaxParkedWaiters;
// A request sent to a node that no longer leads goes on to the leader it
// names (or, naming none, to the leader this node knows after a pause)
// at most this many times.
inline constexpr int kMaxForwardHops = 5;
inline constexpr int64_t kForwardRetryBackoffMs = 100;
// A request not sent yet (no connection to the leader yet) is tried again
// this often until its time is up.
inline constexpr int64_t kForwardRetryMs = 10;
// Publications that reach a node while no leader is known are held and
// handed to the leader once one is, for at most this long, this many and
// this many bytes; the leader stores each once (publication ids). Beyond
// that they are dropped and counted.
inline constexpr int64_t kMaxPublicationHoldMs = 5'000;
inline constexpr size_t kMaxHeldPublications = 10'000;
inline constexpr size_t kMaxHeldPublicationBytes = 64 * 1024 * 1024;
// Requests admitted but not yet answered, across the whole server: those
// being worked on, plus parked long-polls (each holds its admission while it
// waits: a full set of them leaves room for the work that wakes them).
inline constexpr size_t kMaxActiveRequests = 65'536;
inline constexpr size_t kMaxInflightRequests = kMaxActiveRequests + kMaxParkedWaiters;

}  // namespace mailbox::limits
