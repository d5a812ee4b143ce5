// forwarding.hpp: what a node hands another node on a client's behalf
// (RaftNode::forward), and the answer it gets back. Pure encoding.
//
// A node that does not lead hands its clients' queries and publications to
// the leader, and any node hands a status or membership request to the node
// it names (docs/ARCHITECTURE.md, "How a request reaches the leader"). The
// request carries what the client sent; the answer carries the replies the
// client is to get, or says that the node did not lead and did nothing.
//
// Wire (docs/PROTOCOL.md, "Raft transport"): version u8 (1), then
//   request: kind u8 | key | parameters | payload? | encoding? |
//            attachment? | publication id u64
//   answer:  not_leader u8 | leader hint u64 | reply count varint |
//            per reply: ok u8 | key | payload | encoding | attachment?
// strings are varint-length-prefixed bytes, `x?` is a presence byte then x.
//
// Threads: pure values and functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailbox {

inline constexpr uint8_t kForwardFormatVersion = 1;

struct ForwardedRequest {
  enum class Kind : uint8_t {
    kQuery = 1,        // a client's query on the mailbox key space: for the leader
    kPublication = 2,  // a client's publication: for the leader
    kAdmin = 3,        // a query on P/@cluster/node/<id>/...: for that node
  };
  Kind kind = Kind::kQuery;
  std::string key;
  std::string parameters;
  std::optional<std::string> payload;
  std::optional<std::string> encoding;
  std::optional<std::string> attachment;
  uint64_t publication_id = 0;  // publications: their id (0: none)
};

struct ForwardedReply {
  bool ok = true;  // false: an error reply
  std::string key;
  std::string payload;
  std::string encoding;
  std::optional<std::string> attachment;
};

struct ForwardedAnswer {
  // The node does not lead and did nothing; `leader_hint` is the leader it
  // knows (0: none).
  bool not_leader = false;
  uint64_t leader_hint = 0;
  std::vector<ForwardedReply> replies;
};

std::string encode_forwarded_request(const ForwardedRequest& request);
// False when `bytes` is not a well-formed request of a known version.
bool decode_forwarded_request(std::string_view bytes, ForwardedRequest* request);
std::string encode_forwarded_answer(const ForwardedAnswer& answer);
bool decode_forwarded_answer(std::string_view bytes, ForwardedAnswer* answer);

}  // namespace mailbox
