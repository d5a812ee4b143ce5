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
  return "{mode:\"router\",listen:{endpoints:" + endpoint_list(listen) + "},connect:{endpoints:" +
         endpoint_list(connect) + "},scouting:{multicast:{enabled:" + (multicast_scouting ? "true" : "false") +
         "}}}";
}

std::string client_config(const std::vector<std::string>& connect) {
  return "{mode:\"client\",connect:{endpoints:" + endpoint_list(connect) +
         "},scouting:{multicast:{enabled:false}}}";
}

}  // namespace mailbox
