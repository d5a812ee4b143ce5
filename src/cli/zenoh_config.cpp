#include "cli/zenoh_config.hpp"

#include <nlohmann/json.hpp>

namespace mailbox {
namespace {

using nlohmann::json;

// Every message kind Zenoh's access control knows.
const json kAllMessages = {"put",   "delete",           "declare_subscriber", "query",
                           "reply", "declare_queryable", "liveliness_token",   "declare_liveliness_subscriber",
                           "liveliness_query"};

}  // namespace

std::string access_control_json(const std::string& prefix, const RouterSecurity& security) {
  const std::string admin = prefix + "/@cluster/node/*/";
  json rules = json::array({
      {{"id", "node-everything"},
       {"messages", kAllMessages},
       {"flows", {"ingress", "egress"}},
       {"permission", "allow"},
       // `**` matches no verbatim (`@`) chunk: name the cluster's own keys too.
       {"key_exprs", {"**", prefix + "/@cluster/**", "@/**"}}},
      {{"id", "client-put"},
       {"messages", {"put"}},
       {"flows", {"ingress"}},
       {"permission", "allow"},
       {"key_exprs", {prefix + "/*"}}},
      {{"id", "client-query"},
       {"messages", {"query"}},
       {"flows", {"ingress"}},
       {"permission", "allow"},
       {"key_exprs",
        {prefix + "/*", prefix + "/*/*", admin + "status", admin + "add", admin + "remove", admin + "transfer"}}},
      {{"id", "client-replies"},
       {"messages", {"reply"}},
       {"flows", {"egress"}},
       {"permission", "allow"},
       {"key_exprs", {prefix + "/**", prefix + "/@cluster/**"}}},
  });
  json node_names = security.node_names;
  json subjects = json::array({
      // A node is known by its certificate (both ends of a TLS link see the
      // other's) or, with passwords, by its user name.
      {{"id", "nodes-by-certificate"}, {"cert_common_names", node_names}},
      {{"id", "nodes-by-user"}, {"usernames", node_names}},
      {{"id", "clients"}, {"link_protocols", {"tls", "quic"}}},
  });
  json policies = json::array({
      {{"id", "nodes"}, {"rules", {"node-everything"}}, {"subjects", {"nodes-by-certificate", "nodes-by-user"}}},
      {{"id", "clients"}, {"rules", {"client-put", "client-query", "client-replies"}}, {"subjects", {"clients"}}},
  });
  json acl = {{"enabled", true},
              {"default_permission", "deny"},
              {"rules", rules},
              {"subjects", subjects},
              {"policies", policies}};
  return acl.dump();
}

zenoh::ConfigOverrides router_overrides(const std::vector<std::string>& listen,
                                        const std::vector<std::string>& connect, bool multicast_scouting,
                                        const std::string& prefix, const RouterSecurity* security) {
  zenoh::ConfigOverrides out;
  out.emplace_back("mode", json("router").dump());
  out.emplace_back("listen/endpoints", json(listen).dump());
  out.emplace_back("connect/endpoints", json(connect).dump());
  // The nodes of a cluster start their routers when Raft has a leader, all
  // at about the same moment, so a node's first attempt to connect to
  // another often finds it not listening yet: retry soon (Zenoh's default
  // waits 1 s, then 2, then 4), so that the mesh forms within a fraction of
  // a second of readiness.
  out.emplace_back("connect/retry", json({{"period_init_ms", kConnectRetryInitialMs},
                                          {"period_max_ms", kConnectRetryMaxMs},
                                          {"period_increase_factor", 2}})
                                        .dump());
  out.emplace_back("scouting/multicast/enabled", json(multicast_scouting).dump());
  if (!security) return out;
  // Nothing from the operator's file may loosen these.
  out.emplace_back("scouting/multicast/enabled", json(false).dump());
  const bool mtls = security->auth == SessionAuth::kCertificate;
  json tls = {{"root_ca_certificate", security->ca_file},
              {"listen_certificate", security->certificate_file},
              {"listen_private_key", security->private_key_file},
              {"connect_certificate", security->certificate_file},
              {"connect_private_key", security->private_key_file},
              {"enable_mtls", mtls},
              {"verify_name_on_connect", true},
              {"close_link_on_expiration", true}};
  for (const auto& [key, value] : tls.items()) out.emplace_back("transport/link/tls/" + key, value.dump());
  if (security->auth == SessionAuth::kPassword) {
    out.emplace_back("transport/auth/usrpwd", json({{"user", security->node_name},
                                                    {"password", security->node_password},
                                                    {"dictionary_file", security->users_file}})
                                                  .dump());
  } else {
    out.emplace_back("transport/auth/usrpwd", json({{"user", nullptr}, {"password", nullptr},
                                                    {"dictionary_file", nullptr}})
                                                  .dump());
  }
  out.emplace_back("access_control", access_control_json(prefix, *security));
  // The admin space would let a session read the router's configuration.
  out.emplace_back("adminspace/enabled", json(false).dump());
  return out;
}

std::string router_config(const std::vector<std::string>& listen, const std::vector<std::string>& connect,
                          bool multicast_scouting) {
  json config = json::object();
  for (const auto& [path, value] : router_overrides(listen, connect, multicast_scouting, "", nullptr)) {
    json* node = &config;
    size_t pos = 0;
    while (true) {
      const size_t slash = path.find('/', pos);
      const std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
      node = &(*node)[part];
      if (slash == std::string::npos) break;
      pos = slash + 1;
    }
    *node = json::parse(value);
  }
  return config.dump();
}

std::string client_config(const std::vector<std::string>& connect, const ClientSecurity& security) {
  json config = {{"mode", "client"},
                 {"connect", {{"endpoints", connect}}},
                 {"scouting", {{"multicast", {{"enabled", false}}}}}};
  if (security.enabled()) {
    json tls = {{"root_ca_certificate", security.ca_file}, {"verify_name_on_connect", true}};
    if (!security.certificate_file.empty()) {
      tls["connect_certificate"] = security.certificate_file;
      tls["connect_private_key"] = security.private_key_file;
      tls["enable_mtls"] = true;
    }
    config["transport"]["link"]["tls"] = tls;
    if (!security.user.empty()) {
      config["transport"]["auth"]["usrpwd"] = {{"user", security.user}, {"password", security.password}};
    }
  }
  return config.dump();
}

bool is_loopback_address(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string host = host_port.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  if (host.rfind("127.", 0) != 0) return false;
  // 127.a.b.c with digits only.
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
  }
  return dots == 3;
}

bool is_loopback_endpoint(const std::string& endpoint) {
  const size_t slash = endpoint.find('/');
  if (slash == std::string::npos) return false;
  std::string address = endpoint.substr(slash + 1);
  // Drop `?metadata` and `#config`.
  const size_t cut = address.find_first_of("?#");
  if (cut != std::string::npos) address.resize(cut);
  return is_loopback_address(address);
}

}  // namespace mailbox
