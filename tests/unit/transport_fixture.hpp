// transport_fixture.hpp: two Raft transports (nodes 1 and 2) on loopback,
// on one libuv loop run by the test thread, for transport_test.cpp and
// tls_stream_test.cpp. Test-only.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replication/transport.hpp"

namespace mailbox {

// Records what a transport hands its owner; forwarded requests are answered
// by `answer` (or left unanswered when it is empty).
struct Recorder : TransportHandler {
  Transport* transport = nullptr;
  std::function<std::string(std::string_view)> answer;
  std::vector<std::pair<uint64_t, std::string>> requests;  // (id, body)
  std::vector<std::pair<uint64_t, std::string>> replies;
  std::vector<uint64_t> lost;
  void on_raft_message(uint64_t, const std::string&, DecodedMessage) override {}
  bool on_snapshot_chunk(uint64_t, const std::string&, uint64_t, const raft_message&, uint64_t, uint64_t,
                         std::string_view) override {
    return false;
  }
  void on_snapshot_abandoned(uint64_t, uint64_t) override {}
  void read_snapshot_chunk(const std::string&, uint64_t, size_t, std::function<void(bool, std::string)> done) override {
    done(false, {});
  }
  void on_forward(uint64_t, uint64_t connection, uint64_t id, std::string_view request) override {
    requests.emplace_back(id, std::string(request));
    if (answer) transport->reply_forward(connection, id, answer(request));
  }
  void on_forward_reply(uint64_t, uint64_t id, std::string_view reply) override {
    replies.emplace_back(id, std::string(reply));
  }
  void on_forward_lost(uint64_t, uint64_t id) override { lost.push_back(id); }
};

class LoopbackTransports : public ::testing::Test {
 protected:
  // `port_base`: where this suite's ports start (suites run in parallel).
  explicit LoopbackTransports(int port_base) : port_base_(port_base) {}
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    const int base = port_base_ + static_cast<int>(getpid() % 20000);
    address_a_ = "127.0.0.1:" + std::to_string(base);
    address_b_ = "127.0.0.1:" + std::to_string(base + 1);
  }
  // Node 1 (a) and node 2 (b), each with the TLS context given (null: plain).
  void start(std::shared_ptr<const TlsContext> tls_a = nullptr, std::shared_ptr<const TlsContext> tls_b = nullptr) {
    a_ = std::make_unique<Transport>(&loop_, TransportOptions{1, "test", address_a_, tls_a}, rec_a_);
    b_ = std::make_unique<Transport>(&loop_, TransportOptions{2, "test", address_b_, tls_b}, rec_b_);
    rec_a_.transport = a_.get();
    rec_b_.transport = b_.get();
    ASSERT_TRUE(a_->listen().is_ok());
    ASSERT_TRUE(b_->listen().is_ok());
  }
  void TearDown() override {
    int closed = 0;
    if (a_) a_->close([&] { ++closed; });
    if (b_) b_->close([&] { ++closed; });
    run_until([&] { return closed == (a_ ? 1 : 0) + (b_ ? 1 : 0); });
    a_.reset();
    b_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // Runs the loop until `done` or about `max_ms`.
  bool run_until(const std::function<bool()>& done, int max_ms = 5000) {
    for (int i = 0; i < max_ms && !done(); ++i) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      usleep(1000);
    }
    return done();
  }
  // Forwards from a to b once a connection is ready (the first attempt
  // opens it), trying for up to `max_ms`.
  bool forward_when_connected(uint64_t id, std::string_view body, int max_ms = 5000) {
    bool sent = false;
    run_until(
        [&] {
          if (!sent) sent = a_->forward(2, address_b_, id, body);
          return sent;
        },
        max_ms);
    return sent;
  }

  int port_base_;
  uv_loop_t loop_{};
  std::string address_a_, address_b_;
  Recorder rec_a_, rec_b_;
  std::unique_ptr<Transport> a_, b_;
};

}  // namespace mailbox
