// mailboxd: the mailbox server. One process is one node: an embedded Zenoh
// router, a Raft server (libraft) with the mailbox state machine, and the
// service that connects the two. With no arguments it runs a single-node
// cluster on tcp/127.0.0.1:7447 with its data in ./mailbox-data. It accepts
// Zenoh sessions only once it can serve them, and then tells systemd
// (Type=notify: READY=1; STOPPING=1 on the way out).
//
// Open mode (the default) listens on loopback only and says so loudly; a
// non-loopback address needs --insecure. Secure mode (--secure-dir) listens
// on TLS only, requires authenticated sessions, applies a generated Zenoh
// access-control list and checks every request's token (docs/SECURITY.md).
// SIGHUP reloads the token verification keys without dropping sessions.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "auth/verifier.hpp"
#include "cli/secure_config.hpp"
#include "cli/toml_config.hpp"
#include "cli/zenoh_config.hpp"
#include "core/limits.hpp"
#include "replication/raft_node.hpp"
#include "server/http_endpoint.hpp"
#include "server/request.hpp"
#include "server/service.hpp"
#include "util/log.hpp"

namespace {
constexpr int kExitUsage = 2;
constexpr const char* kDefaultClusterName = "mailbox";
constexpr int kExitStartFailed = 1;
// While waiting for a leader before accepting clients: how often to look,
// and how often to say so.
constexpr int64_t kReadinessPollMs = 10;
constexpr int64_t kReadinessLogIntervalMs = 5000;
// Largest --zenoh-config file read.
constexpr size_t kMaxZenohConfigFileBytes = 1 << 20;
// The status page waits this long for the other members' statuses.
constexpr int64_t kClusterStatusTimeoutMs = 1000;

// Token verification keys: where they are read from and who uses them.
struct TokenKeys {
  std::string directory;
  std::shared_ptr<mailbox::auth::TokenVerifier> verifier;
};

// SIGHUP: reads the keys again (key rotation). A bad directory keeps the
// keys in use.
void reload_token_keys(const TokenKeys& keys) {
  if (!keys.verifier) {
    log_info("SIGHUP: no token keys to reload (open mode)");
    return;
  }
  std::shared_ptr<mailbox::auth::KeyRing> ring;
  mailbox::Status s = mailbox::auth::KeyRing::load_directory(keys.directory, &ring);
  if (!s.is_ok()) {
    log_error("SIGHUP: keeping the current token keys: %s", s.message.c_str());
    return;
  }
  keys.verifier->replace_keys(ring);
  log_info("SIGHUP: token keys reloaded: %s", ring->key_ids().c_str());
}

// Waits until Raft can serve: this node leads, or it knows the leader.
// False when a stop signal came first (its number in *signal_number).
bool wait_until_raft_serves(const mailbox::RaftNode& node, const sigset_t& signals, const TokenKeys& keys,
                            int* signal_number) {
  int64_t waited_ms = 0;
  while (!node.is_leader() && node.leader_id() == 0) {
    const timespec poll{0, kReadinessPollMs * 1'000'000};
    const int sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGHUP) {
      reload_token_keys(keys);
    } else if (sig > 0) {
      *signal_number = sig;
      return false;
    }
    waited_ms += kReadinessPollMs;
    if (waited_ms % kReadinessLogIntervalMs == 0) {
      log_info("waiting for a Raft leader before accepting clients (%lld s)",
                        static_cast<long long>(waited_ms / 1000));
    }
  }
  return true;
}
}  // namespace

namespace {
// Allocations at least this large are mapped and unmapped by glibc, never
// carved from the heap. A fixed threshold turns off glibc's dynamic one,
// which rises to 32 MiB after the first large free, after which a
// snapshot's transient buffers (its head, the views of its payloads: tens of
// MiB with a million mailboxes) stay in the heap and in RSS when freed.
constexpr int kMallocMmapThresholdBytes = 1 << 20;
}  // namespace

int main(int argc, char** argv) {
  using namespace mailbox;
  mallopt(M_MMAP_THRESHOLD, kMallocMmapThresholdBytes);
  zenoh::use_mailbox_runtime_unless_configured();  // before any thread starts
  CLI::App app{"mailboxd: a durable, replicated mailbox service over Zenoh"};
  std::vector<std::string> listen{"tcp/127.0.0.1:7447"};
  std::vector<std::string> connect;
  std::string prefix = "forge/mailbox";
  std::string data_dir = "mailbox-data";
  uint64_t node_id = 1;
  std::string raft_address = "127.0.0.1:7450";
  size_t max_payload_bytes = limits::kDefaultMaxPayloadBytes;
  std::string default_ttl = "24h";
  std::string max_wait = "5m";
  bool multicast = false;
  StateConfig state_config;
  std::string dedup_window = "5m";
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 64;
  uint64_t snapshot_trailing_bytes = 64ULL << 20;
  uint64_t snapshot_max_log_bytes = 256ULL << 20;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string cluster_name;  // default kDefaultClusterName, or secure.toml's
  uint64_t log_segment_bytes = 64ULL << 20;
  unsigned max_inflight_entries = 64;
  std::vector<std::string> peers;
  bool join = false;
  bool recover = false;
  std::string secure_dir;
  std::string zenoh_config_file;
  bool insecure = false;
  std::string token_keys_dir;
  std::string metrics_listen;
  app.add_option("--listen", listen, "Zenoh endpoints the embedded router listens on")->capture_default_str();
  app.add_option("--connect", connect, "Zenoh endpoints of other routers to connect to");
  app.add_option("--prefix", prefix, "key prefix of the service")->capture_default_str();
  app.add_option("--data-dir", data_dir, "directory of the Raft log and snapshots")->capture_default_str();
  app.add_option("--node-id", node_id, "this node's Raft id (> 0)")->capture_default_str();
  app.add_option("--raft-address", raft_address, "host:port of this node's Raft transport")->capture_default_str();
  app.add_option("--max-payload-bytes", max_payload_bytes, "largest message payload")->capture_default_str();
  app.add_option("--default-ttl", default_ttl, "time to live of a message put without ttl=")->capture_default_str();
  app.add_option("--max-wait", max_wait, "longest long-poll wait= a client may ask for")->capture_default_str();
  app.add_flag("--multicast-scouting", multicast, "enable Zenoh multicast scouting");
  app.add_option("--max-messages-per-mailbox", state_config.max_messages_per_mailbox, "quota per mailbox")
      ->capture_default_str();
  app.add_option("--max-bytes-per-mailbox", state_config.max_bytes_per_mailbox, "quota per mailbox")
      ->capture_default_str();
  app.add_option("--max-total-bytes", state_config.max_total_bytes, "quota for the whole service")
      ->capture_default_str();
  app.add_option("--dedup-window", dedup_window, "how long a rid is remembered")->capture_default_str();
  app.add_option("--max-dedup-entries", state_config.max_dedup_entries, "most rids remembered")
      ->capture_default_str();
  app.add_option("--max-deliveries", state_config.max_deliveries,
                 "leased deliveries before a message moves to <mailbox>.dlq")
      ->capture_default_str();
  app.add_option("--snapshot-threshold", snapshot_threshold, "log entries between snapshots (at least; stored messages / 16 if more)")->capture_default_str();
  app.add_option("--snapshot-max-log-bytes", snapshot_max_log_bytes,
                 "log bytes after which a snapshot is taken (at most; a quarter of the state below that)")
      ->capture_default_str();
  app.add_option("--snapshot-trailing", snapshot_trailing, "log entries kept after a snapshot (at least)")
      ->capture_default_str();
  app.add_option("--snapshot-trailing-bytes", snapshot_trailing_bytes,
                 "log bytes kept after a snapshot (at most an eighth of the snapshot), so lagging followers "
                 "catch up without a snapshot install")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--log-format", log_format,
                 "text, or json: one object per line (ts, level, component, msg; op and mailbox on lines about a "
                 "request)")
      ->capture_default_str();
  app.add_option("--cluster-name", cluster_name,
                 "the cluster's name (default mailbox; secure mode: secure.toml's): a data directory or Raft peer "
                 "of another cluster is refused, and tokens must name it as their audience");
  app.add_option("--log-segment-bytes", log_segment_bytes, "size of each Raft log segment file (preallocated)")
      ->capture_default_str();
  app.add_option("--max-inflight-entries", max_inflight_entries,
                 "log entries in flight to each follower before its acknowledgement")
      ->capture_default_str();
  app.add_option("--peer", peers,
                 "a voter of the initial cluster as ID=HOST:PORT (its Raft address), this node included; "
                 "repeat for each. None: a cluster of one");
  app.add_flag("--join", join, "start with an empty data directory without bootstrapping: wait to be added");
  app.add_flag("--recover", recover,
               "disaster recovery: force the --peer list as the new configuration into this node's log "
               "(see docs/OPERATIONS.md)");
  app.add_option("--secure-dir", secure_dir,
                 "secure mode: TLS only, authenticated sessions, access control and tokens, from DIR "
                 "(secure.toml, ca.pem, node.pem, node.key, token-keys/; docs/SECURITY.md)");
  app.add_option("--zenoh-config", zenoh_config_file,
                 "a Zenoh JSON5 configuration file; this program's own settings are laid over it");
  app.add_flag("--insecure", insecure,
               "allow listening on non-loopback addresses without secure mode (anyone who reaches the node "
               "can read and write every mailbox)");
  app.add_option("--token-keys", token_keys_dir,
                 "check request tokens with the <kid>.pub keys of DIR (secure mode: DIR/token-keys)");
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics (/metrics) and the status page (/) over HTTP on HOST:PORT "
                 "(default: off; it has no authentication: keep it on loopback or a private network)");
  // The configuration file: TOML, one top-level key per flag; a flag given
  // on the command line overrides it; a key that names no flag is an error.
  app.config_formatter(std::make_shared<TomlConfig>());
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_config("--config", "",
                 "read flags from a TOML file: one top-level key per flag without its dashes (data-dir = "
                 "\"/var/lib/mailbox\", peer = [\"1=HOST:PORT\"]); flags given here override it");
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "check the flags and the configuration file, print the settings in effect, and exit (0: valid)");
  CLI11_PARSE(app, argc, argv);

  LogLevel level;
  if (!parse_log_level(log_level.c_str(), &level)) {
    std::fprintf(stderr, "mailboxd: bad --log-level %s\n", log_level.c_str());
    return kExitUsage;
  }
  set_log_level(level);
  LogFormat format;
  if (!parse_log_format(log_format.c_str(), &format)) {
    std::fprintf(stderr, "mailboxd: bad --log-format %s: use text or json\n", log_format.c_str());
    return kExitUsage;
  }
  set_log_format(format);
  ServiceOptions service_options;
  service_options.prefix = prefix;
  service_options.node_id = node_id;
  std::string metrics_host;
  int metrics_port = 0;
  if (!metrics_listen.empty() && !split_host_port(metrics_listen, &metrics_host, &metrics_port)) {
    std::fprintf(stderr, "mailboxd: bad --metrics-listen %s: use HOST:PORT\n", metrics_listen.c_str());
    return kExitUsage;
  }
  service_options.max_payload_bytes = max_payload_bytes;
  if (prefix.empty() || prefix.back() == '/' || prefix.find('*') != std::string::npos) {
    std::fprintf(stderr, "mailboxd: bad --prefix %s\n", prefix.c_str());
    return kExitUsage;
  }
  if (max_payload_bytes == 0 || max_payload_bytes > limits::kMaxPayloadBytesCeiling) {
    std::fprintf(stderr, "mailboxd: --max-payload-bytes must be 1..%zu\n", limits::kMaxPayloadBytesCeiling);
    return kExitUsage;
  }
  if (!parse_duration_ms(default_ttl, &service_options.default_ttl_ms) || service_options.default_ttl_ms <= 0 ||
      service_options.default_ttl_ms > limits::kMaxTtlMs) {
    std::fprintf(stderr, "mailboxd: bad --default-ttl %s\n", default_ttl.c_str());
    return kExitUsage;
  }
  if (!parse_duration_ms(max_wait, &service_options.request_limits.max_wait_ms)) {
    std::fprintf(stderr, "mailboxd: bad --max-wait %s\n", max_wait.c_str());
    return kExitUsage;
  }
  if (!parse_duration_ms(dedup_window, &state_config.dedup_window_ms)) {
    std::fprintf(stderr, "mailboxd: bad --dedup-window %s\n", dedup_window.c_str());
    return kExitUsage;
  }
  if (state_config.max_deliveries == 0) {
    std::fprintf(stderr, "mailboxd: --max-deliveries must be > 0\n");
    return kExitUsage;
  }
  if (node_id == 0) {
    std::fprintf(stderr, "mailboxd: --node-id must be > 0\n");
    return kExitUsage;
  }

  // Open or secure mode.
  const bool secure = !secure_dir.empty();
  // A node's subject: its certificate's common name, its Zenoh user in
  // password mode, and the identity the Raft transport pins it to.
  const std::string node_name = node_subject(node_id);
  SecureSettings secure_settings;
  std::shared_ptr<const TlsContext> transport_tls;
  if (secure) {
    Status s = load_secure_dir(secure_dir, node_name, &secure_settings);
    if (s.is_ok()) {
      s = TlsContext::create(secure_settings.router.ca_file, secure_settings.router.certificate_file,
                             secure_settings.router.private_key_file, &transport_tls);
    }
    if (!s.is_ok()) {
      std::fprintf(stderr, "mailboxd: %s\n", s.message.c_str());
      return kExitUsage;
    }
    if (token_keys_dir.empty()) token_keys_dir = secure_settings.token_keys_dir;
    if (cluster_name.empty()) cluster_name = secure_settings.cluster_name;
    for (const auto& e : listen) {
      if (e.rfind("tls/", 0) != 0 && e.rfind("quic/", 0) != 0) {
        std::fprintf(stderr, "mailboxd: secure mode listens on TLS only: use --listen tls/HOST:PORT or quic/HOST:PORT, not %s\n",
                     e.c_str());
        return kExitUsage;
      }
    }
    for (const auto& e : connect) {
      if (e.rfind("tls/", 0) != 0 && e.rfind("quic/", 0) != 0) {
        std::fprintf(stderr, "mailboxd: secure mode connects over TLS only: use --connect tls/HOST:PORT or quic/HOST:PORT, not %s\n",
                     e.c_str());
        return kExitUsage;
      }
    }
  } else if (!insecure) {
    for (const auto& e : listen) {
      if (!is_loopback_endpoint(e)) {
        std::fprintf(stderr,
                     "mailboxd: refusing to listen on %s without secure mode: anyone who reaches it could read "
                     "and write every mailbox. Use --secure-dir (docs/SECURITY.md), or --insecure to force it\n",
                     e.c_str());
        return kExitUsage;
      }
    }
    if (!is_loopback_address(raft_address)) {
      std::fprintf(stderr,
                   "mailboxd: refusing Raft address %s without secure mode; use --insecure to force it\n",
                   raft_address.c_str());
      return kExitUsage;
    }
  }
  if (cluster_name.empty()) cluster_name = kDefaultClusterName;
  service_options.cluster_name = cluster_name;
  TokenKeys token_keys;
  if (!token_keys_dir.empty()) {
    std::shared_ptr<auth::KeyRing> ring;
    Status s = auth::KeyRing::load_directory(token_keys_dir, &ring);
    if (!s.is_ok()) {
      std::fprintf(stderr, "mailboxd: %s\n", s.message.c_str());
      return kExitUsage;
    }
    token_keys.directory = token_keys_dir;
    token_keys.verifier = std::make_shared<auth::TokenVerifier>(cluster_name, ring);
    service_options.verifier = token_keys.verifier;
  }
  std::string zenoh_base = "{}";
  if (!zenoh_config_file.empty()) {
    std::ifstream in(zenoh_config_file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().size() > kMaxZenohConfigFileBytes) {
      std::fprintf(stderr, "mailboxd: cannot read --zenoh-config %s\n", zenoh_config_file.c_str());
      return kExitUsage;
    }
    zenoh_base = text.str();
  }

  // Signals: handled by sigwait on this thread; every thread started from
  // here on inherits the blocked mask. SIGPIPE is ignored; SIGHUP reloads
  // the token keys.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  zenoh::init_logging("error");

  RaftNodeOptions raft_options;
  raft_options.node_id = node_id;
  raft_options.raft_address = raft_address;
  raft_options.data_dir = data_dir;
  if (peers.empty()) {
    raft_options.initial_voters = {RaftPeer{node_id, raft_address}};
  } else {
    bool self_listed = false;
    for (const auto& p : peers) {
      const size_t eq = p.find('=');
      char* end = nullptr;
      const uint64_t id = eq == std::string::npos ? 0 : std::strtoull(p.c_str(), &end, 10);
      if (id == 0 || end != p.c_str() + eq || eq + 1 >= p.size()) {
        std::fprintf(stderr, "mailboxd: bad --peer %s: use ID=HOST:PORT\n", p.c_str());
        return kExitUsage;
      }
      const std::string address = p.substr(eq + 1);
      if (id == node_id) {
        self_listed = true;
        if (address != raft_address) {
          std::fprintf(stderr, "mailboxd: --peer %s disagrees with --raft-address %s\n", p.c_str(),
                       raft_address.c_str());
          return kExitUsage;
        }
      }
      raft_options.initial_voters.push_back(RaftPeer{id, address});
    }
    if (!self_listed) {
      std::fprintf(stderr, "mailboxd: --peer must list this node (%llu) too\n",
                   static_cast<unsigned long long>(node_id));
      return kExitUsage;
    }
  }
  if (join) raft_options.initial_voters.clear();
  if (recover && (join || peers.empty())) {
    std::fprintf(stderr, "mailboxd: --recover needs the new --peer list and no --join\n");
    return kExitUsage;
  }
  raft_options.recover = recover;
  raft_options.state_config = state_config;
  raft_options.snapshot_threshold_entries = snapshot_threshold;
  raft_options.snapshot_trailing_entries = snapshot_trailing;
  raft_options.snapshot_trailing_bytes = snapshot_trailing_bytes;
  raft_options.snapshot_max_log_bytes = snapshot_max_log_bytes;
  raft_options.cluster_name = cluster_name;
  raft_options.transport_tls = transport_tls;
  raft_options.log_segment_bytes = log_segment_bytes;
  raft_options.max_inflight_entries = max_inflight_entries;
  if (cluster_name.empty() || cluster_name.size() > 64 || cluster_name.find_first_of(" \t\n") != std::string::npos) {
    std::fprintf(stderr, "mailboxd: --cluster-name must be 1-64 characters without spaces\n");
    return kExitUsage;
  }
  if (log_segment_bytes < (1ULL << 20) || log_segment_bytes > (1ULL << 32)) {
    std::fprintf(stderr, "mailboxd: --log-segment-bytes must be 1 MiB..4 GiB\n");
    return kExitUsage;
  }
  if (max_inflight_entries == 0 || max_inflight_entries > 4096) {
    std::fprintf(stderr, "mailboxd: --max-inflight-entries must be 1..4096\n");
    return kExitUsage;
  }
  if (check_config) {
    std::printf("%s", app.config_to_str(/*default_also=*/true, /*write_description=*/false).c_str());
    std::fprintf(stderr, "mailboxd: configuration OK\n");
    return 0;
  }
  RaftNode node(raft_options);
  Status s = node.start();
  if (!s.is_ok()) {
    log_error("cannot start Raft: %s", s.message.c_str());
    return kExitStartFailed;
  }

  // Readiness (SPEC v2): the router neither listens nor connects until the
  // service has declared everything it serves and Raft knows a leader, so
  // the first client that connects is served and its first publication is
  // stored (a follower holds what it cannot yet pass to the leader).
  std::string error;
  auto session = zenoh::Session::open_deferred(
      zenoh_base, router_overrides(listen, connect, multicast, prefix, secure ? &secure_settings.router : nullptr),
      &error);
  if (!session) {
    log_error("cannot start the Zenoh router: %s", error.c_str());
    node.stop();
    return kExitStartFailed;
  }
  int exit_code = 0;
  {
    MailboxService service(service_options, *session, node);
    s = service.start();
    // Metrics and the status page: on their own threads, reading snapshots.
    HttpEndpoint http({[&service] { return prometheus_text(service.metrics_input()); },
                       [&service] { return service.status_page(kClusterStatusTimeoutMs); }});
    if (s.is_ok() && !metrics_listen.empty()) s = http.start(metrics_listen);
    int signal_number = 0;
    if (!s.is_ok()) {
      log_error("%s", s.message.c_str());
      exit_code = kExitStartFailed;
    } else if (!wait_until_raft_serves(node, stop_signals, token_keys, &signal_number)) {
      log_info("signal %d before the node could serve: shutting down", signal_number);
    } else if (!session->start(&error)) {
      log_error("cannot start the Zenoh router: %s", error.c_str());
      exit_code = kExitStartFailed;
    } else {
      std::string endpoints;
      for (const auto& e : listen) endpoints += (endpoints.empty() ? "" : ",") + e;
      log_info("mailboxd node %llu serving %s/** on %s (raft %s, data %s)", static_cast<unsigned long long>(node_id),
               prefix.c_str(), endpoints.c_str(), raft_address.c_str(), data_dir.c_str());
      if (secure) {
        log_info("secure mode: cluster '%s', TLS only, %s authentication, access control on; token keys %s",
                 cluster_name.c_str(),
                 secure_settings.router.auth == SessionAuth::kPassword ? "user/password" : "client certificate",
                 token_keys_dir.c_str());
        log_warn("secure mode does not protect the Raft transport yet (%s): keep it on a private network",
                 raft_address.c_str());
      } else {
        log_warn("*** OPEN MODE: no TLS, no authentication, no access control: any process that reaches %s "
                 "can read and write every mailbox%s. Use --secure-dir for anything but a trusted host "
                 "(docs/SECURITY.md) ***",
                 endpoints.c_str(), token_keys.verifier ? " (tokens are checked)" : "");
      }
      sd_notify(0, "READY=1");
      while (sigwait(&stop_signals, &signal_number) == 0 && signal_number == SIGHUP) reload_token_keys(token_keys);
      log_info("signal %d: shutting down", signal_number);
      sd_notify(0, "STOPPING=1");
    }
    // Order: no new requests; stop Raft (pending requests are answered);
    // send the last replies; then close Zenoh.
    http.stop();
    service.stop_accepting();
    node.stop();
    service.drain_replies();
  }
  session.reset();
  log_info("stopped");
  return exit_code;
}
