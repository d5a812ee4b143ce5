#include "cli/zenoh_config.hpp"

#include "server/replies.hpp"

namespace mailbox {
namespace {
std::string endpoint_list(const std::vector<std::string>& endpoints) {
  std::string out = "[";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (i) out += ",";
    append_json_string(out, endpoints[i]);
  }
  return out + "]";
}
}  // namespace

std::string router_config(const std::vector<std::string>& listen, const std::vector<std::string>& connect,
                          bool multicast_scouting) {
  // The nodes of a cluster start their routers when Raft has a leader, all
  // at about the same moment, so a node's first attempt to connect to
  // another often finds it not listening yet: retry soon (Zenoh's default
  // waits 1 s, then 2, then 4), so that the mesh forms within a fraction of
  // a second of readiness.
  return "{mode:\"router\",listen:{endpoints:" + endpoint_list(listen) + "},connect:{endpoints:" +
         endpoint_list(connect) + ",retry:{period_init_ms:" + std::to_string(kConnectRetryInitialMs) +
         ",period_max_ms:" + std::to_string(kConnectRetryMaxMs) +
         ",period_increase_factor:2}},scouting:{multicast:{enabled:" + (multicast_scouting ? "true" : "false") +
         "}}}";
}

std::string client_config(const std::vector<std::string>& connect) {
  return "{mode:\"client\",connect:{endpoints:" + endpoint_list(connect) +
         "},scouting:{multicast:{enabled:false}}}";
}

}  // namespace mailbox
