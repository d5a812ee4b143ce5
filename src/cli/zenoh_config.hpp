// zenoh_config.hpp: builds the Zenoh configurations the programs use: the
// embedded router of mailboxd (open, or secure: TLS only, authenticated
// sessions, an access-control list) and the client sessions of `mailbox`.
//
// Threads: pure; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bridge/cpp/zenoh_bridge.hpp"

namespace mailbox {

// A router retries connecting to another router after this long, doubling
// up to the maximum.
inline constexpr int64_t kConnectRetryInitialMs = 100;
inline constexpr int64_t kConnectRetryMaxMs = 1000;

// How secure-mode sessions authenticate (docs/SECURITY.md).
enum class SessionAuth {
  kCertificate,  // mutual TLS: every session presents a certificate of the cluster's CA
  kPassword,     // TLS (server certificate) plus Zenoh user/password
};

// The Zenoh side of a node in secure mode.
struct RouterSecurity {
  SessionAuth auth = SessionAuth::kCertificate;
  std::string ca_file;           // trust anchor of every TLS link
  std::string certificate_file;  // this node's certificate (CN = its node name)
  std::string private_key_file;
  std::string users_file;     // kPassword: the `user:password` dictionary (nodes' included)
  std::string node_name;      // this node's subject (CN; its user in kPassword)
  std::string node_password;  // kPassword: this node's password towards other nodes
  // Subjects (certificate common names, or user names) that are nodes of
  // the cluster: only they may declare, subscribe, answer or hold
  // liveliness tokens under the prefix.
  std::vector<std::string> node_names;
};

// The access-control list of a secure node (Zenoh's `access_control`, as
// JSON): default deny; node subjects may do everything; any other TLS
// session may put on `<prefix>/<box>`, query `<prefix>/<box>` and
// `<prefix>/<box>/<op>` (and the list form `<prefix>/<pattern>/stats`),
// query the per-node admin keys status, add, remove and transfer (add,
// remove and transfer need a token with the `admin` right), and receive
// replies under the prefix. Nothing else: no subscriber, queryable,
// liveliness token or reply of its own, no `publish` admin key, no
// wildcard query beyond one chunk.
std::string access_control_json(const std::string& prefix, const RouterSecurity& security);

// The settings mailboxd lays over an operator's --zenoh-config file: mode,
// endpoints, retry, scouting and, with `security`, TLS, authentication and
// the access-control list. Later entries win.
zenoh::ConfigOverrides router_overrides(const std::vector<std::string>& listen,
                                        const std::vector<std::string>& connect, bool multicast_scouting,
                                        const std::string& prefix, const RouterSecurity* security);

// An open embedded router listening on `listen` and connecting to `connect`.
std::string router_config(const std::vector<std::string>& listen, const std::vector<std::string>& connect,
                          bool multicast_scouting);

// How a client session authenticates to a secure node; empty: plain TCP.
struct ClientSecurity {
  std::string ca_file;           // trust anchor for the node's certificate
  std::string certificate_file;  // client certificate (kCertificate nodes)
  std::string private_key_file;
  std::string user;  // user/password (kPassword nodes)
  std::string password;
  bool enabled() const { return !ca_file.empty(); }
};

// A client session connecting to `connect`.
std::string client_config(const std::vector<std::string>& connect, const ClientSecurity& security = {});

// True when `endpoint` (`tcp/127.0.0.1:7447`, `tls/[::1]:7447`,
// `tcp/localhost:7447`) binds only a loopback address.
bool is_loopback_endpoint(const std::string& endpoint);
// True for `127.x.y.z:port`, `[::1]:port` and `localhost:port`.
bool is_loopback_address(const std::string& host_port);

}  // namespace mailbox
