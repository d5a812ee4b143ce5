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
#include "cli/zenoh_config.hpp"

namespace mailbox {

struct ClientReply {
  bool ok = false;
  std::string key;
  std::string payload;
  std::string encoding;
  std::optional<std::string> attachment;
};

// How a client reaches a secure service: TLS settings and credentials for
// the session, and the token every request carries (SPEC v2).
struct ClientAccess {
  ClientSecurity security;
  std::string token;  // empty: requests carry no attachment
};

// The attachment that carries a token: `{"token":"<JWT>"}`.
std::string token_attachment(const std::string& token);

class Client {
 public:
  static std::unique_ptr<Client> connect(const std::vector<std::string>& endpoints, std::string* error);
  static std::unique_ptr<Client> connect(const std::vector<std::string>& endpoints, const ClientAccess& access,
                                         std::string* error);
  // A client over an already open session, shared with other clients (the
  // load generator's --sessions). Queries from several threads may share it.
  static std::unique_ptr<Client> over(std::shared_ptr<zenoh::Session> session, const std::string& token = "");

  // Sends a query (with the token's attachment unless `options` has one)
  // and collects every reply until it ends or times out,
  // decisive first: OK replies, then errors, then `unavailable` (which a
  // node cut off from the leader may send beside the leader's answer).
  std::vector<ClientReply> query(const std::string& selector, const zenoh::GetOptions& options);
  // A fire-and-forget put with blocking congestion control: Zenoh never
  // drops it on the way to the service (docs/PROTOCOL.md).
  // `options` go into the attachment beside the token (SPEC v2: a
  // publication's `{"delay": "30s", "ttl": "1h"}`).
  bool publish(const std::string& key, const std::string& payload, const std::optional<std::string>& encoding,
               const std::vector<std::pair<std::string, std::string>>& options = {});

 private:
  std::shared_ptr<zenoh::Session> session_;
  std::string attachment_;  // token_attachment, or empty
};

}  // namespace mailbox
