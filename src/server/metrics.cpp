#include "server/metrics.hpp"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "core/assert.hpp"
#include "server/replies.hpp"

namespace mailbox {
namespace {

void append_number(std::string& out, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  out += buf;
}


void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// Label values: backslash, quote and newline are escaped.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void sample(std::string& out, std::string_view name, std::string_view labels, double v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  append_number(out, v);
  out += '\n';
}

void gauge(std::string& out, std::string_view name, std::string_view help, double v) {
  header(out, name, "gauge", help);
  sample(out, name, "", v);
}

void counter(std::string& out, std::string_view name, std::string_view help, double v) {
  header(out, name, "counter", help);
  sample(out, name, "", v);
}

// One histogram series (its buckets in seconds, cumulative), under `labels`.
void histogram_series(std::string& out, std::string_view name, std::string_view labels, const HistogramSnapshot& h) {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    cumulative += h.counts[i];
    std::string le;
    if (i < LatencyHistogram::kBoundsUs.size()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(LatencyHistogram::kBoundsUs[i]) / 1e6);
      le = buf;
    } else {
      le = "+Inf";
    }
    sample(out, std::string(name) + "_bucket", std::string(labels) + sep + "le=\"" + le + "\"",
           static_cast<double>(cumulative));
  }
  sample(out, std::string(name) + "_sum", labels, static_cast<double>(h.sum_us) / 1e6);
  sample(out, std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

void histogram(std::string& out, std::string_view name, std::string_view help, const HistogramSnapshot& h) {
  header(out, name, "histogram", help);
  histogram_series(out, name, "", h);
}

// The upper bound (seconds) of the bucket holding quantile q; 0 when empty.
double quantile_s(const HistogramSnapshot& h, double q) {
  uint64_t n = 0;
  for (auto c : h.counts) n += c;
  if (n == 0) return 0;
  const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n - 1)) + 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    seen += h.counts[i];
    if (seen >= rank) {
      const size_t b = std::min(i, LatencyHistogram::kBoundsUs.size() - 1);
      return static_cast<double>(LatencyHistogram::kBoundsUs[b]) / 1e6;
    }
  }
  return static_cast<double>(LatencyHistogram::kBoundsUs.back()) / 1e6;
}

double role_value(std::string_view state) {
  if (state == "follower") return 1;
  if (state == "candidate") return 2;
  if (state == "leader") return 3;
  return 0;
}

void box_json(std::string& out, const MailboxOverview::Box& b) {
  out += "{\"name\":";
  append_json_string(out, b.name);
  out += ",\"messages\":" + std::to_string(b.messages) + ",\"bytes\":" + std::to_string(b.bytes) +
         ",\"leased\":" + std::to_string(b.leased) + ",\"oldest_age_ms\":" + std::to_string(b.oldest_age_ms) + "}";
}

}  // namespace

std::string_view drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kInvalid: return "invalid";
    case DropReason::kUnauthorized: return "unauthorized";
    case DropReason::kOverload: return "overload";
    case DropReason::kExpired: return "expired";
    case DropReason::kShutdown: return "shutdown";
    case DropReason::kRefused: return "refused";
  }
  return "unknown";
}

size_t RequestMetrics::slot(size_t operation) {
  MAILBOX_ASSERT(operation < kMaxMetricOperations, "metric operation slot in range");
  return operation;
}

void RequestMetrics::name_operation(size_t operation, std::string_view name) { names_[slot(operation)] = name; }

void RequestMetrics::count(size_t operation, ErrorCode code) {
  const size_t c = static_cast<size_t>(code);
  MAILBOX_ASSERT(c < kMaxMetricCodes, "reply code slot in range");
  counts_[slot(operation)][c].fetch_add(1, std::memory_order_relaxed);
}

std::vector<RequestMetrics::Row> RequestMetrics::rows() const {
  std::vector<Row> out;
  for (size_t op = 0; op < kMaxMetricOperations; ++op) {
    if (names_[op].empty()) continue;
    for (size_t c = 0; c < kMaxMetricCodes; ++c) {
      const uint64_t n = counts_[op][c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out.push_back(Row{names_[op], std::string(error_code_name(static_cast<ErrorCode>(c))), n});
    }
  }
  return out;
}

std::vector<RequestMetrics::Latency> RequestMetrics::latencies() const {
  std::vector<Latency> out;
  for (size_t op = 0; op < kMaxMetricOperations; ++op) {
    if (names_[op].empty() || latency_[op].total() == 0) continue;
    out.push_back(Latency{names_[op], latency_[op].snapshot()});
  }
  return out;
}

std::string prometheus_text(const MetricsInput& in) {
  const RaftNodeStatus& r = in.raft;
  std::string out;
  out.reserve(16 << 10);
  header(out, "mailbox_node_info", "gauge", "This node's identity (value 1).");
  sample(out, "mailbox_node_info",
         "node=\"" + std::to_string(in.node_id) + "\",cluster=\"" + label_value(in.cluster) + "\"", 1);
  gauge(out, "mailbox_uptime_seconds", "Seconds since this mailboxd started.", in.uptime_seconds);

  header(out, "mailbox_requests_total", "counter",
         "Requests acted on by this node, by operation and reply code (ok or the error code).");
  for (const auto& row : in.requests) {
    sample(out, "mailbox_requests_total", "op=\"" + label_value(row.operation) + "\",code=\"" + row.code + "\"",
           static_cast<double>(row.count));
  }
  header(out, "mailbox_request_duration_seconds", "histogram",
         "Time from a request's arrival on the node that acts on it to its answer, by operation.");
  for (const auto& l : in.request_latency) {
    histogram_series(out, "mailbox_request_duration_seconds", "op=\"" + label_value(l.operation) + "\"",
                     l.histogram);
  }
  counter(out, "mailbox_queries_received_total", "Queries from this node's Zenoh clients.",
          static_cast<double>(in.queries_received));
  counter(out, "mailbox_queries_forwarded_total", "Of those, handed to the leader.",
          static_cast<double>(in.queries_forwarded));
  counter(out, "mailbox_requests_rejected_overload_total", "Requests refused: too many in flight or waiting.",
          static_cast<double>(in.rejected_overload));
  counter(out, "mailbox_publications_received_total", "Publications (fire-and-forget puts) from this node's clients.",
          static_cast<double>(in.publications_received));
  counter(out, "mailbox_publications_forwarded_total", "Publications handed to the leader.",
          static_cast<double>(in.publications_forwarded));
  header(out, "mailbox_publications_dropped_total", "counter", "Publications not stored, by reason.");
  for (size_t i = 0; i < kDropReasons; ++i) {
    sample(out, "mailbox_publications_dropped_total",
           "reason=\"" + std::string(drop_reason_name(static_cast<DropReason>(i))) + "\"",
           static_cast<double>(in.publications_dropped[i]));
  }
  if (in.zenoh_sessions) {
    header(out, "mailbox_zenoh_sessions", "gauge",
           "Zenoh sessions open to this node's router, by the other end's kind (client; peer or router: "
           "other nodes).");
    sample(out, "mailbox_zenoh_sessions", "kind=\"client\"", static_cast<double>(in.zenoh_sessions->clients));
    sample(out, "mailbox_zenoh_sessions", "kind=\"peer\"", static_cast<double>(in.zenoh_sessions->peers));
    sample(out, "mailbox_zenoh_sessions", "kind=\"router\"", static_cast<double>(in.zenoh_sessions->routers));
  }

  // Raft.
  gauge(out, "mailbox_raft_term", "Current Raft term.", static_cast<double>(r.term));
  gauge(out, "mailbox_raft_role", "Raft role: 0 unavailable, 1 follower, 2 candidate, 3 leader.",
        role_value(r.state));
  gauge(out, "mailbox_raft_is_leader", "1 when this node leads.", r.is_leader ? 1 : 0);
  gauge(out, "mailbox_raft_leader_id", "The leader this node knows (0: none).", static_cast<double>(r.leader_id));
  gauge(out, "mailbox_raft_commit_index", "Highest committed log index known here.",
        static_cast<double>(r.commit_index));
  gauge(out, "mailbox_raft_applied_index", "Highest log index applied to this node's state.",
        static_cast<double>(r.applied_index));
  gauge(out, "mailbox_raft_last_index", "Last index in this node's log.", static_cast<double>(r.last_index));
  gauge(out, "mailbox_raft_persisted_index", "Last index durable in this node's log.",
        static_cast<double>(r.persisted_index));
  gauge(out, "mailbox_raft_voters", "Voters in the configuration.", static_cast<double>(r.voters));
  gauge(out, "mailbox_raft_members", "Servers in the configuration.", static_cast<double>(r.configuration.size()));
  header(out, "mailbox_raft_follower_lag_entries", "gauge",
         "On the leader: entries each follower is behind the leader's last index.");
  for (const auto& f : r.followers) {
    const uint64_t lag = r.last_index > f.match_index ? r.last_index - f.match_index : 0;
    sample(out, "mailbox_raft_follower_lag_entries", "follower=\"" + std::to_string(f.id) + "\"",
           static_cast<double>(lag));
  }
  counter(out, "mailbox_raft_unknown_outcomes_total", "Requests answered unknown_outcome.",
          static_cast<double>(r.unknown_outcomes));
  counter(out, "mailbox_snapshots_total", "Snapshots this node took.", static_cast<double>(r.snapshots_taken));
  counter(out, "mailbox_snapshots_installed_total", "Snapshots this node installed from a leader.",
          static_cast<double>(r.snapshots_installed));
  counter(out, "mailbox_snapshot_written_bytes_total", "Bytes of state in the snapshots this node took.",
          static_cast<double>(r.snapshot_bytes_written));
  gauge(out, "mailbox_snapshot_index", "Log index of the newest snapshot.", static_cast<double>(r.snapshot_index));
  gauge(out, "mailbox_log_disk_bytes", "Bytes of the Raft log on disk.", static_cast<double>(r.log_disk_bytes));
  gauge(out, "mailbox_log_disk_full", "1 while the log cannot grow: the disk is full.", r.log_disk_full ? 1 : 0);
  counter(out, "mailbox_disk_full_refusals_total", "Client requests refused while leading on a full disk.",
          static_cast<double>(r.refused_disk_full));
  counter(out, "mailbox_disk_full_leadership_transfers_total", "Leadership handed off because the disk was full.",
          static_cast<double>(r.disk_full_transfers));
  counter(out, "mailbox_transport_sent_bytes_total", "Raft transport bytes sent.",
          static_cast<double>(r.transport_bytes_sent));
  counter(out, "mailbox_transport_received_bytes_total", "Raft transport bytes received.",
          static_cast<double>(r.transport_bytes_received));
  counter(out, "mailbox_transport_dropped_messages_total", "Raft messages dropped (peer unreachable or slow).",
          static_cast<double>(r.transport_messages_dropped));
  counter(out, "mailbox_transport_refused_connections_total",
          "Raft transport connections refused: not TLS, a certificate not naming the node it claims, a foreign "
          "cluster or a bad frame.",
          static_cast<double>(r.transport_connections_refused));
  gauge(out, "mailbox_forwards_pending", "Requests handed to another node, waiting for its answer.",
        static_cast<double>(r.forwards_pending));
  counter(out, "mailbox_forwards_lost_total", "Requests handed to another node whose answer was lost.",
          static_cast<double>(r.forwards_lost));
  gauge(out, "mailbox_longpoll_waiters", "Consumers waiting (long-poll) on this node.",
        static_cast<double>(r.parked_waiters));
  gauge(out, "mailbox_longpoll_waiter_bytes", "What the parked long-polls are charged against their memory bound.",
        static_cast<double>(r.parked_waiter_bytes));
  counter(out, "mailbox_longpoll_refused_total", "Long-polls answered unavailable: too many were waiting.",
          static_cast<double>(r.waiters_refused));

  histogram(out, "mailbox_loop_iteration_seconds", "Time of one Raft loop iteration.", r.loop_iteration_us);
  histogram(out, "mailbox_log_write_seconds", "A group-committed log write, fdatasync included.", r.log_write_us);
  histogram(out, "mailbox_log_fsync_seconds", "The fdatasync of a log write.", r.log_fsync_us);
  histogram(out, "mailbox_commit_seconds", "A command entry from proposal to applied, on the leader.", r.commit_us);
  histogram(out, "mailbox_apply_seconds", "The state machine applying one entry.", r.apply_us);
  histogram(out, "mailbox_snapshot_seconds", "A snapshot from its start to durable on disk.", r.snapshot_us);

  // The state.
  const MailboxOverview& m = in.mailboxes;
  gauge(out, "mailbox_mailboxes", "Mailboxes holding messages.", static_cast<double>(m.mailboxes));
  gauge(out, "mailbox_messages", "Messages stored (leased included).", static_cast<double>(r.messages));
  gauge(out, "mailbox_stored_bytes", "Payload bytes stored.", static_cast<double>(m.bytes));
  if (m.leased_known) {
    gauge(out, "mailbox_messages_leased", "Messages under an active lease.", static_cast<double>(m.leased));
    gauge(out, "mailbox_messages_delayed", "Messages put with a delay, not due yet.", static_cast<double>(m.delayed));
  }
  gauge(out, "mailbox_dead_letter_messages", "Messages in dead-letter mailboxes (<name>.dlq).",
        static_cast<double>(m.dead_letter_messages));
  gauge(out, "mailbox_overview_walk_seconds",
        "How long the last walk of the mailboxes (for these numbers and the status page) held the Raft loop.",
        static_cast<double>(m.walk_us) / 1e6);
  return out;
}

std::string status_page_json(const MetricsInput& in) {
  const RaftNodeStatus& r = in.raft;
  std::string out = "{\"node\":" + std::to_string(in.node_id) + ",\"cluster\":";
  append_json_string(out, in.cluster);
  out += ",\"state\":";
  append_json_string(out, r.state);
  out += ",\"leader\":" + std::to_string(r.leader_id) + ",\"term\":" + std::to_string(r.term) +
         ",\"commit_index\":" + std::to_string(r.commit_index) + ",\"applied_index\":" +
         std::to_string(r.applied_index) + ",\"last_index\":" + std::to_string(r.last_index) +
         ",\"log_disk_bytes\":" + std::to_string(r.log_disk_bytes) +
         ",\"log_disk_full\":" + (r.log_disk_full ? "true" : "false") + ",\"uptime_s\":";
  append_number(out, in.uptime_seconds);
  out += ",\"members\":[";
  for (size_t i = 0; i < r.configuration.size(); ++i) {
    const auto& s = r.configuration[i];
    if (i) out += ",";
    out += "{\"id\":" + std::to_string(s.id) + ",\"address\":";
    append_json_string(out, s.address);
    out += ",\"role\":";
    append_json_string(out, s.role);
    out += ",\"leader\":" + std::string(s.id == r.leader_id ? "true" : "false");
    out += ",\"lag\":";
    if (s.id == in.node_id && r.is_leader) {
      out += "0";
    } else {
      bool found = false;
      for (const auto& f : r.followers) {
        if (f.id != s.id) continue;
        found = true;
        out += std::to_string(r.last_index > f.match_index ? r.last_index - f.match_index : 0);
      }
      if (!found) out += "null";
    }
    out += "}";
  }
  out += "],\"mailboxes\":{\"count\":" + std::to_string(in.mailboxes.mailboxes) +
         ",\"messages\":" + std::to_string(r.messages) + ",\"bytes\":" + std::to_string(in.mailboxes.bytes) +
         ",\"leased\":" + (in.mailboxes.leased_known ? std::to_string(in.mailboxes.leased) : "null") +
         ",\"delayed\":" + (in.mailboxes.leased_known ? std::to_string(in.mailboxes.delayed) : "null") +
         ",\"dead_letter_messages\":" + std::to_string(in.mailboxes.dead_letter_messages) + ",\"deepest\":[";
  for (size_t i = 0; i < in.mailboxes.deepest.size(); ++i) {
    if (i) out += ",";
    box_json(out, in.mailboxes.deepest[i]);
  }
  out += "],\"dead_letters\":[";
  for (size_t i = 0; i < in.mailboxes.dead_letters.size(); ++i) {
    if (i) out += ",";
    box_json(out, in.mailboxes.dead_letters[i]);
  }
  out += "]},\"requests\":[";
  for (size_t i = 0; i < in.requests.size(); ++i) {
    if (i) out += ",";
    out += "{\"op\":";
    append_json_string(out, in.requests[i].operation);
    out += ",\"code\":";
    append_json_string(out, in.requests[i].code);
    out += ",\"count\":" + std::to_string(in.requests[i].count) + "}";
  }
  out += "],\"latency\":[";
  for (size_t i = 0; i < in.request_latency.size(); ++i) {
    const auto& l = in.request_latency[i];
    if (i) out += ",";
    out += "{\"op\":";
    append_json_string(out, l.operation);
    out += ",\"count\":" + std::to_string(l.histogram.count) + ",\"sum_s\":";
    append_number(out, static_cast<double>(l.histogram.sum_us) / 1e6);
    out += ",\"p50_s\":";
    append_number(out, quantile_s(l.histogram, 0.5));
    out += ",\"p99_s\":";
    append_number(out, quantile_s(l.histogram, 0.99));
    out += ",\"buckets\":[";  // per bucket, not cumulative (bounds: latency_bounds_s, then +Inf)
    for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) {
      if (b) out += ",";
      out += std::to_string(l.histogram.counts[b]);
    }
    out += "]}";
  }
  out += "],\"latency_bounds_s\":[";
  for (size_t b = 0; b < LatencyHistogram::kBoundsUs.size(); ++b) {
    if (b) out += ",";
    append_number(out, static_cast<double>(LatencyHistogram::kBoundsUs[b]) / 1e6);
  }
  out += "],\"publications_dropped\":{";
  for (size_t i = 0; i < kDropReasons; ++i) {
    if (i) out += ",";
    append_json_string(out, drop_reason_name(static_cast<DropReason>(i)));
    out += ":" + std::to_string(in.publications_dropped[i]);
  }
  out += "}}";
  return out;
}

bool find_metric_value(std::string_view exposition, std::string_view name, std::string_view labels, double* value) {
  std::string want(name);
  if (!labels.empty()) want += "{" + std::string(labels) + "}";
  want += " ";
  size_t at = 0;
  while (at < exposition.size()) {
    size_t end = exposition.find('\n', at);
    if (end == std::string_view::npos) end = exposition.size();
    const std::string_view line = exposition.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, want.size()) == want) {
      const std::string number(line.substr(want.size()));
      char* stop = nullptr;
      *value = std::strtod(number.c_str(), &stop);
      return stop != number.c_str();
    }
  }
  return false;
}

}  // namespace mailbox
