// secure_config.hpp: reading a node's secure-mode directory
// (`mailboxd --secure-dir DIR`, docs/SECURITY.md).
//
// What it is for: everything a node needs to run in secure mode, in one
// place an operator prepares (scripts/make-test-pki.sh makes a test one):
//
//   DIR/secure.toml        cluster-name = "prod"
//                          auth = "certificate"        (or "password")
//                          node-names = ["node-1", "node-2", "node-3"]
//   DIR/ca.pem             the cluster's CA certificate
//   DIR/node.pem, node.key this node's certificate (CN = its node name) and key
//   DIR/token-keys/<kid>.pub  Ed25519 public keys that verify tokens
//   DIR/users              auth = "password": `user:password` lines (nodes too)
//   DIR/node.password      auth = "password": this node's own password
//
// Threads: pure functions over files; call from one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "cli/zenoh_config.hpp"
#include "core/errors.hpp"

namespace mailbox {

inline constexpr const char* kSecureConfigFile = "secure.toml";
inline constexpr const char* kTokenKeysDirectory = "token-keys";
// The longest cluster name (it is every token's audience).
inline constexpr size_t kMaxClusterNameBytes = 128;

struct SecureSettings {
  std::string cluster_name;
  std::string token_keys_dir;
  RouterSecurity router;
};

// Reads DIR for the node called `node_name`. `invalid_argument` naming the
// missing or bad file, or a certificate whose common name is not
// `node_name`.
Status load_secure_dir(const std::string& dir, const std::string& node_name, SecureSettings* out);

// The common name (CN) of the subject of the first certificate in a PEM
// file; `invalid_argument` when there is none.
Status certificate_common_name(const std::string& pem_file, std::string* common_name);

}  // namespace mailbox
