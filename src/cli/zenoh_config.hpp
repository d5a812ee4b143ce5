// zenoh_config.hpp: builds the JSON5 Zenoh configurations the programs use.
//
// Threads: pure; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mailbox {

// A router retries connecting to another router after this long, doubling
// up to the maximum.
inline constexpr int64_t kConnectRetryInitialMs = 100;
inline constexpr int64_t kConnectRetryMaxMs = 1000;

// An embedded router listening on `listen` and connecting to `connect`.
std::string router_config(const std::vector<std::string>& listen, const std::vector<std::string>& connect,
                          bool multicast_scouting);
// A client session connecting to `connect`.
std::string client_config(const std::vector<std::string>& connect);

}  // namespace mailbox
