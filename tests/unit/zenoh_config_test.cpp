// Unit tests of cli/zenoh_config: the loopback rule of open mode, and the
// Zenoh settings of secure mode (what the access-control list allows).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/zenoh_config.hpp"

namespace mailbox {
namespace {

TEST(Loopback, OnlyLoopbackAddressesCount) {
  for (const char* e : {"tcp/127.0.0.1:7447", "tcp/127.1.2.3:1", "tls/[::1]:7447", "tcp/localhost:7447",
                        "tcp/127.0.0.1:7447#iface=lo"}) {
    EXPECT_TRUE(is_loopback_endpoint(e)) << e;
  }
  for (const char* e : {"tcp/0.0.0.0:7447", "tcp/10.0.0.1:7447", "tcp/[::]:7447", "tcp/127.0.0.1.example.org:1",
                        "tcp/1127.0.0.1:1", "tcp/example.org:7447", "127.0.0.1:7447", "tcp/127.0.0.1"}) {
    EXPECT_FALSE(is_loopback_endpoint(e)) << e;
  }
  EXPECT_TRUE(is_loopback_address("127.0.0.1:7450"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0:7450"));
}

RouterSecurity security(SessionAuth auth) {
  RouterSecurity s;
  s.auth = auth;
  s.ca_file = "/d/ca.pem";
  s.certificate_file = "/d/node.pem";
  s.private_key_file = "/d/node.key";
  s.users_file = "/d/users";
  s.node_name = "node-1";
  s.node_password = "pw";
  s.node_names = {"node-1", "node-2"};
  return s;
}

nlohmann::json find(const zenoh::ConfigOverrides& o, const std::string& key) {
  nlohmann::json found;
  for (const auto& [k, v] : o) {
    if (k == key) found = nlohmann::json::parse(v);  // the last one wins, as in Zenoh
  }
  return found;
}

TEST(SecureRouter, TlsAuthAndAccessControl) {
  const RouterSecurity s = security(SessionAuth::kCertificate);
  auto o = router_overrides({"tls/127.0.0.1:7447"}, {"tls/127.0.0.1:7448"}, true, "forge/mailbox", &s);
  EXPECT_EQ(find(o, "transport/link/tls/enable_mtls"), true);
  EXPECT_EQ(find(o, "transport/link/tls/root_ca_certificate"), "/d/ca.pem");
  EXPECT_EQ(find(o, "scouting/multicast/enabled"), false) << "secure mode turns multicast scouting off";
  EXPECT_TRUE(find(o, "transport/auth/usrpwd")["dictionary_file"].is_null());
  auto acl = find(o, "access_control");
  EXPECT_EQ(acl["enabled"], true);
  EXPECT_EQ(acl["default_permission"], "deny");
  // Clients: put on one chunk, queries on mailbox keys and four admin keys,
  // replies out; nothing else, in particular no declarations.
  std::map<std::string, nlohmann::json> rules;
  for (const auto& r : acl["rules"]) rules[r["id"]] = r;
  EXPECT_EQ(rules["client-put"]["key_exprs"], nlohmann::json({"forge/mailbox/*"}));
  EXPECT_EQ(rules["client-query"]["flows"], nlohmann::json({"ingress"}));
  for (const auto& k : rules["client-query"]["key_exprs"]) {
    const std::string key = k;
    EXPECT_EQ(key.find("**"), std::string::npos) << key;
    EXPECT_EQ(key.find("publish"), std::string::npos) << key;
  }
  for (const char* id : {"client-put", "client-query", "client-replies"}) {
    for (const auto& m : rules[id]["messages"]) {
      EXPECT_TRUE(m == "put" || m == "query" || m == "reply") << id << " allows " << m;
    }
  }
  std::vector<std::string> client_rules;
  for (const auto& p : acl["policies"]) {
    if (p["subjects"] == nlohmann::json({"clients"})) client_rules = p["rules"].get<std::vector<std::string>>();
  }
  EXPECT_EQ(client_rules, (std::vector<std::string>{"client-put", "client-query", "client-replies"}));
  bool nodes_by_certificate = false;
  for (const auto& subject : acl["subjects"]) {
    if (subject["id"] == "nodes-by-certificate") {
      nodes_by_certificate = subject["cert_common_names"] == nlohmann::json({"node-1", "node-2"});
    }
  }
  EXPECT_TRUE(nodes_by_certificate);
}

TEST(SecureRouter, PasswordModeSetsTheDictionaryAndTheNodesCredentials) {
  const RouterSecurity s = security(SessionAuth::kPassword);
  auto o = router_overrides({"tls/127.0.0.1:7447"}, {}, false, "p", &s);
  EXPECT_EQ(find(o, "transport/link/tls/enable_mtls"), false);
  auto usrpwd = find(o, "transport/auth/usrpwd");
  EXPECT_EQ(usrpwd["user"], "node-1");
  EXPECT_EQ(usrpwd["password"], "pw");
  EXPECT_EQ(usrpwd["dictionary_file"], "/d/users");
}

TEST(OpenRouter, NoSecuritySettings) {
  auto o = router_overrides({"tcp/127.0.0.1:7447"}, {}, false, "p", nullptr);
  EXPECT_TRUE(find(o, "access_control").is_null());
  EXPECT_TRUE(find(o, "transport/link/tls/enable_mtls").is_null());
  auto config = nlohmann::json::parse(router_config({"tcp/127.0.0.1:7447"}, {}, false));
  EXPECT_EQ(config["mode"], "router");
  EXPECT_EQ(config["listen"]["endpoints"], nlohmann::json({"tcp/127.0.0.1:7447"}));
}

TEST(ClientConfig, TlsAndPassword) {
  ClientSecurity s;
  s.ca_file = "ca.pem";
  s.certificate_file = "a.pem";
  s.private_key_file = "a.key";
  auto c = nlohmann::json::parse(client_config({"tls/127.0.0.1:7447"}, s));
  EXPECT_EQ(c["transport"]["link"]["tls"]["enable_mtls"], true);
  s = ClientSecurity{};
  s.ca_file = "ca.pem";
  s.user = "alice";
  s.password = "pw";
  c = nlohmann::json::parse(client_config({"tls/127.0.0.1:7447"}, s));
  EXPECT_EQ(c["transport"]["auth"]["usrpwd"]["user"], "alice");
  EXPECT_TRUE(c["transport"]["link"]["tls"]["enable_mtls"].is_null());
  c = nlohmann::json::parse(client_config({"tcp/127.0.0.1:7447"}));
  EXPECT_TRUE(c["transport"].is_null());
}

}  // namespace
}  // namespace mailbox
