#include "cli/secure_config.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace mailbox {
namespace {

// Longest certificate common name read (X.509 caps it at 64 characters).
constexpr size_t kMaxCommonNameBytes = 256;

Status invalid(std::string message) { return Status::error(ErrorCode::kInvalidArgument, std::move(message)); }

Status need_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return invalid("secure mode needs " + path);
  return Status::ok();
}

}  // namespace

Status certificate_common_name(const std::string& pem_file, std::string* common_name) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(pem_file.c_str(), "r"), &std::fclose);
  if (!file) return invalid("cannot read " + pem_file);
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return invalid(pem_file + " holds no PEM certificate");
  char buffer[kMaxCommonNameBytes] = {0};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, buffer, sizeof buffer);
  if (n <= 0) return invalid(pem_file + ": the certificate has no common name");
  *common_name = std::string(buffer, static_cast<size_t>(n));
  return Status::ok();
}

Status load_secure_dir(const std::string& dir, const std::string& node_name, SecureSettings* out) {
  namespace fs = std::filesystem;
  const fs::path root = fs::absolute(dir);
  const std::string config_path = (root / kSecureConfigFile).string();
  if (Status s = need_file(config_path); !s.is_ok()) return s;
  CLI::App config;
  std::string cluster_name;
  std::string auth = "certificate";
  std::vector<std::string> node_names;
  config.add_option("--cluster-name", cluster_name);
  config.add_option("--auth", auth);
  config.add_option("--node-names", node_names);
  config.allow_config_extras(CLI::config_extras_mode::error);
  config.set_config("--config", config_path, "", true);
  try {
    config.parse(std::vector<std::string>{});
  } catch (const CLI::ParseError& e) {
    return invalid(config_path + ": " + e.what());
  }
  if (cluster_name.empty() || cluster_name.size() > kMaxClusterNameBytes) {
    return invalid(config_path + ": cluster-name must be 1-" + std::to_string(kMaxClusterNameBytes) + " bytes");
  }
  if (auth != "certificate" && auth != "password") {
    return invalid(config_path + ": auth must be \"certificate\" or \"password\"");
  }
  if (node_names.empty()) return invalid(config_path + ": node-names must list the nodes' names");
  bool listed = false;
  for (const auto& n : node_names) {
    if (n.empty()) return invalid(config_path + ": an empty node name");
    listed = listed || n == node_name;
  }
  if (!listed) return invalid(config_path + ": node-names does not list this node (" + node_name + ")");

  SecureSettings settings;
  settings.cluster_name = cluster_name;
  settings.token_keys_dir = (root / kTokenKeysDirectory).string();
  RouterSecurity& r = settings.router;
  r.auth = auth == "password" ? SessionAuth::kPassword : SessionAuth::kCertificate;
  r.ca_file = (root / "ca.pem").string();
  r.certificate_file = (root / "node.pem").string();
  r.private_key_file = (root / "node.key").string();
  r.node_name = node_name;
  r.node_names = node_names;
  for (const auto* f : {&r.ca_file, &r.certificate_file, &r.private_key_file}) {
    if (Status s = need_file(*f); !s.is_ok()) return s;
  }
  std::string cn;
  if (Status s = certificate_common_name(r.certificate_file, &cn); !s.is_ok()) return s;
  if (cn != node_name) {
    return invalid(r.certificate_file + " names '" + cn + "', not this node (" + node_name +
                   "): each node needs its own certificate");
  }
  if (r.auth == SessionAuth::kPassword) {
    r.users_file = (root / "users").string();
    const std::string password_file = (root / "node.password").string();
    if (Status s = need_file(r.users_file); !s.is_ok()) return s;
    if (Status s = need_file(password_file); !s.is_ok()) return s;
    std::ifstream in(password_file);
    std::getline(in, r.node_password);
    if (r.node_password.empty()) return invalid(password_file + " is empty");
  }
  *out = std::move(settings);
  return Status::ok();
}

}  // namespace mailbox
