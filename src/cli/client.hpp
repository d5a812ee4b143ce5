// client.hpp: a blocking mailbox client over the bridge, for the `mailbox`
// CLI (and later its load generator).
//
// Threads: one Client per thread; calls block until the query ends.
// Ownership: owns its Zenoh session, or shares it with other clients.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bridge/cpp/zenoh_bridge.hpp"

namespace mailbox {

struct ClientReply {
  bool ok = false;
  std::string key;
  std::string payload;
  std::string encoding;
  std::optional<std::string> attachment;
};

class Client {
 public:
  static std::unique_ptr<Client> connect(const std::vector<std::string>& endpoints, std::string* error);
  // A client over an already open session, shared with other clients (the
  // load generator's --sessions). Queries from several threads may share it.
  static std::unique_ptr<Client> over(std::shared_ptr<zenoh::Session> session);

  // Sends a query and collects every reply until it ends or times out,
  // decisive first: OK replies, then errors, then `unavailable` (which a
  // node cut off from the leader may send beside the leader's answer).
  std::vector<ClientReply> query(const std::string& selector, const zenoh::GetOptions& options);
  // A fire-and-forget put with blocking congestion control: Zenoh never
  // drops it on the way to the service (docs/PROTOCOL.md).
  bool publish(const std::string& key, const std::string& payload, const std::optional<std::string>& encoding);

 private:
  std::shared_ptr<zenoh::Session> session_;
};

}  // namespace mailbox
