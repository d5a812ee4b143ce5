// The Prometheus text exposition and the status page's JSON
// (server/metrics.hpp): names, labels, cumulative buckets, units.
#include "server/metrics.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <set>
#include <sstream>

namespace mailbox {
namespace {

MetricsInput sample_input() {
  MetricsInput in;
  in.node_id = 2;
  in.cluster = "alpha";
  in.raft.state = "leader";
  in.raft.is_leader = true;
  in.raft.leader_id = 2;
  in.raft.term = 7;
  in.raft.commit_index = 100;
  in.raft.applied_index = 99;
  in.raft.last_index = 105;
  in.raft.messages = 42;
  in.raft.log_disk_bytes = 1 << 20;
  in.raft.configuration = {{1, "127.0.0.1:1", "voter"}, {2, "127.0.0.1:2", "voter"}, {3, "127.0.0.1:3", "voter"}};
  in.raft.followers = {{1, 105}, {3, 90}};
  LatencyHistogram h;
  h.record(40);       // first bucket (<= 50 us)
  h.record(3'000);    // <= 5 ms
  h.record(20'000'000);  // +Inf
  in.raft.log_fsync_us = h.snapshot();
  RequestMetrics requests;
  requests.name_operation(0, "put");
  requests.name_operation(1, "consume");
  requests.count(0, ErrorCode::kOk);
  requests.count(0, ErrorCode::kOk);
  requests.count(1, ErrorCode::kEmpty);
  requests.record_latency_us(0, 800);
  in.requests = requests.rows();
  in.request_latency = requests.latencies();
  in.publications_dropped[static_cast<size_t>(DropReason::kUnauthorized)] = 3;
  in.mailboxes.mailboxes = 5;
  in.mailboxes.bytes = 4096;
  in.mailboxes.leased = 1;
  in.mailboxes.leased_known = true;
  in.mailboxes.deepest = {{"orders", 30, 3000, 1, 1500}};
  in.mailboxes.dead_letters = {{"orders.dlq", 2, 20, 0, 10}};
  in.mailboxes.dead_letter_messages = 2;
  return in;
}

double value(const std::string& text, const std::string& name, const std::string& labels = "") {
  double v = -1;
  EXPECT_TRUE(find_metric_value(text, name, labels, &v)) << name << "{" << labels << "}\n" << text;
  return v;
}

TEST(Metrics, RequestsByOperationAndCode) {
  const std::string text = prometheus_text(sample_input());
  EXPECT_EQ(value(text, "mailbox_requests_total", "op=\"put\",code=\"ok\""), 2);
  EXPECT_EQ(value(text, "mailbox_requests_total", "op=\"consume\",code=\"empty\""), 1);
  double unused;
  EXPECT_FALSE(find_metric_value(text, "mailbox_requests_total", "op=\"consume\",code=\"ok\"", &unused));
  EXPECT_NE(text.find("# TYPE mailbox_requests_total counter\n"), std::string::npos);
}

TEST(Metrics, HistogramsAreCumulativeInSeconds) {
  const std::string text = prometheus_text(sample_input());
  EXPECT_NE(text.find("# TYPE mailbox_log_fsync_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(value(text, "mailbox_log_fsync_seconds_bucket", "le=\"5e-05\""), 1);
  EXPECT_EQ(value(text, "mailbox_log_fsync_seconds_bucket", "le=\"0.005\""), 2);
  EXPECT_EQ(value(text, "mailbox_log_fsync_seconds_bucket", "le=\"10\""), 2);
  EXPECT_EQ(value(text, "mailbox_log_fsync_seconds_bucket", "le=\"+Inf\""), 3);
  EXPECT_EQ(value(text, "mailbox_log_fsync_seconds_count"), 3);
  EXPECT_NEAR(value(text, "mailbox_log_fsync_seconds_sum"), 20.00304, 1e-9);
  EXPECT_EQ(value(text, "mailbox_request_duration_seconds_bucket", "op=\"put\",le=\"0.001\""), 1);
  EXPECT_EQ(value(text, "mailbox_request_duration_seconds_bucket", "op=\"put\",le=\"0.0005\""), 0);
}

TEST(Metrics, RaftAndState) {
  const std::string text = prometheus_text(sample_input());
  EXPECT_EQ(value(text, "mailbox_raft_term"), 7);
  EXPECT_EQ(value(text, "mailbox_raft_role"), 3);
  EXPECT_EQ(value(text, "mailbox_raft_commit_index"), 100);
  EXPECT_EQ(value(text, "mailbox_raft_follower_lag_entries", "follower=\"1\""), 0);
  EXPECT_EQ(value(text, "mailbox_raft_follower_lag_entries", "follower=\"3\""), 15);
  EXPECT_EQ(value(text, "mailbox_log_disk_bytes"), 1 << 20);
  EXPECT_EQ(value(text, "mailbox_messages"), 42);
  EXPECT_EQ(value(text, "mailbox_messages_leased"), 1);
  EXPECT_EQ(value(text, "mailbox_publications_dropped_total", "reason=\"unauthorized\""), 3);
  EXPECT_EQ(value(text, "mailbox_publications_dropped_total", "reason=\"expired\""), 0);
  EXPECT_EQ(value(text, "mailbox_node_info", "node=\"2\",cluster=\"alpha\""), 1);
}

// Every line is a comment (HELP/TYPE) or `name{labels} value`; every sample's
// family has a TYPE; names use the allowed characters.
TEST(Metrics, ExpositionIsWellFormed) {
  const std::string text = prometheus_text(sample_input());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> typed;
  while (std::getline(lines, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream parts(line.substr(7));
      std::string name, type;
      parts >> name >> type;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      typed.insert(name);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    const size_t end = line.find_first_of("{ ");
    ASSERT_NE(end, std::string::npos) << line;
    std::string name = line.substr(0, end);
    for (char c : name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_') << line;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          typed.count(name.substr(0, name.size() - s.size()))) {
        name = name.substr(0, name.size() - s.size());
      }
    }
    EXPECT_TRUE(typed.count(name)) << "no TYPE before " << line;
    EXPECT_EQ(name.rfind("mailbox_", 0), 0u) << line;
  }
}

TEST(Metrics, StatusPageJson) {
  const auto j = nlohmann::json::parse(status_page_json(sample_input()));
  EXPECT_EQ(j["node"], 2);
  EXPECT_EQ(j["leader"], 2);
  EXPECT_EQ(j["members"].size(), 3u);
  EXPECT_EQ(j["members"][2]["lag"], 15);
  EXPECT_EQ(j["members"][1]["lag"], 0);  // the leader itself
  EXPECT_EQ(j["mailboxes"]["deepest"][0]["name"], "orders");
  EXPECT_EQ(j["mailboxes"]["deepest"][0]["messages"], 30);
  EXPECT_EQ(j["mailboxes"]["dead_letters"][0]["name"], "orders.dlq");
  EXPECT_EQ(j["latency"][0]["op"], "put");
  EXPECT_DOUBLE_EQ(j["latency"][0]["p99_s"].get<double>(), 0.001);
  ASSERT_EQ(j["latency"][0]["buckets"].size(), LatencyHistogram::kBuckets);
  EXPECT_EQ(j["latency"][0]["buckets"][4], 1);  // 800 us: the bucket up to 1 ms
  EXPECT_DOUBLE_EQ(j["latency_bounds_s"][4].get<double>(), 0.001);
  EXPECT_EQ(j["publications_dropped"]["unauthorized"], 3);
}

TEST(Metrics, LabelValuesAreEscaped) {
  MetricsInput in = sample_input();
  in.cluster = "a\"b\\c";
  const std::string text = prometheus_text(in);
  EXPECT_NE(text.find("cluster=\"a\\\"b\\\\c\""), std::string::npos) << text;
}

}  // namespace
}  // namespace mailbox
