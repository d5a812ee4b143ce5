// requests.hpp: the requests the replication layer serves and their results.
//
// What it is for: the server hands commands (core/commands.hpp), reads and
// membership changes to the replication layer (RaftNode) and gets each
// result through a callback. These types are shared by the node's public
// interface and its driver.
//
// Threads: plain values. Ownership: a callback is owned by whoever holds the
// request and is called exactly once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/state_machine.hpp"

namespace mailbox {

// A read of the state, served after a barrier. Set its members by name: a
// positional brace list that omitted `list` left it uninitialized in our
// GCC 12 build (found by valgrind in the simulation).
struct ReadRequest {
  enum class Kind : uint8_t { kPeek, kStats, kList };
  Kind kind = Kind::kPeek;
  std::string mailbox;
  uint32_t max_count = 1;
  int64_t wait_ms = 0;  // peek: long-poll while the mailbox is empty
  // A long-poll's bytes held by the caller while it waits (its query); see
  // RaftDriver::submit_command.
  size_t held_bytes = 0;
  // kList: the page asked for, and which names the client may see (empty:
  // all). Called on the replication loop thread: pure and quick.
  ListQuery list;
  std::function<bool(std::string_view)> accept;
};

struct ReadResult {
  Status status;
  std::vector<DeliveredMessage> messages;  // peek
  MailboxStats stats;                      // stats
  std::vector<ListedMailbox> listed;       // list
};

using CommandCallback = std::function<void(CommandResult&&)>;
using ReadCallback = std::function<void(ReadResult&&)>;
using StatusCallback = std::function<void(Status&&)>;

// Forwarding between nodes (RaftNode::forward): a request's bytes and its
// answer's are the server's own (server/forwarding.hpp); the replication
// layer carries them.
using ForwardCallback = std::function<void(Status, std::string reply)>;
using ForwardResponder = std::function<void(std::string reply)>;
using ForwardHandler = std::function<void(uint64_t from, std::string request, ForwardResponder respond)>;

// A change of membership or leadership, done by the leader.
struct MembershipRequest {
  enum class Op : uint8_t { kAdd, kRemove, kTransfer };
  Op op = Op::kAdd;
  uint64_t id = 0;      // the server; for transfer 0 picks a voter
  std::string address;  // for add: its Raft address
};

struct RaftPeer {
  uint64_t id = 0;
  std::string address;  // host:port of its Raft transport
};

struct RaftServerInfo {
  uint64_t id = 0;
  std::string address;
  std::string role;  // voter, standby, spare
};

}  // namespace mailbox
