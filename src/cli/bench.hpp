// bench.hpp: `mailbox bench`, a load generator over the same bridge.
//
// Producers and consumers are separate concurrent clients, each with its own
// thread, and its own Zenoh session unless `sessions` makes them share a few
// (one TCP connection carries several clients' requests, as a multiplexing
// client library would). Closed loop (each client waits for its reply
// before the next request) unless a target rate is given; with a rate, each
// producer sends on a fixed schedule and latency is measured from the
// scheduled send time, so a stalled server is not hidden (no coordinated
// omission). Latencies go into log-linear histograms (cli/histogram.hpp).
//
// Threads: `run_bench` blocks the caller; it starts and joins its own threads
// (threads driver), or runs every client from Zenoh's callback threads and
// waits until all have stopped (callback driver).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/zenoh_config.hpp"

namespace mailbox {

struct BenchOptions {
  std::vector<std::string> connect{"tcp/127.0.0.1:7447"};
  std::string prefix = "forge/mailbox";
  std::string mailbox = "bench";
  unsigned mailboxes = 1;          // producers and consumers spread over this many
  unsigned producers = 1;
  unsigned consumers = 1;
  size_t message_bytes = 1024;
  bool acknowledged = true;        // false: fire-and-forget publications
  unsigned batch = 1;              // consume n= (batch reply shape when > 1)
  bool rid = false;                // every put and consume carries a rid
  double rate_per_second = 0;      // total put rate; 0: closed loop
  double duration_s = 10;
  double warmup_s = 2;
  // Zenoh sessions the clients share, client i using session i mod
  // `sessions`; 0: every client opens its own. Either way each client is
  // its own thread with one request in flight.
  unsigned sessions = 0;
  // No thread per client: each client sends its next request from the
  // completion callback of the previous one (closed loop, acknowledged puts).
  bool callback_driver = false;
  // A secure service: TLS and credentials of every session, and the token
  // every request carries (empty: none).
  ClientSecurity security;
  std::string token;
};

// Runs the load and prints the report (human text, or one JSON object).
// Returns 0, or 1 when a client saw an error it could not retry.
int run_bench(const BenchOptions& options, bool json);

}  // namespace mailbox
