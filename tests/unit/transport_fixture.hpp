// transport_fixture.hpp: two Raft transports (nodes 1 and 2) on loopback,
// on one libuv loop run by the test thread, for transport_test.cpp and
// tls_stream_test.cpp. Test-only.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

// A loopback port nobody listens on now (the kernel's choice of a free
// one; another process could take it before the test does, rarely).
inline int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(address.sin_port);
}

class LoopbackTransports : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    const int port_a = free_loopback_port();
    int port_b = free_loopback_port();
    while (port_b == port_a) port_b = free_loopback_port();
    ASSERT_GT(port_a, 0);
    ASSERT_GT(port_b, 0);
    address_a_ = "127.0.0.1:" + std::to_string(port_a);
    address_b_ = "127.0.0.1:" + std::to_string(port_b);
  }
  // Node 1 (a) and node 2 (b), each with the TLS context given (null: plain).
  void start(std::shared_ptr<const TlsContext> tls_a = nullptr, std::shared_ptr<const TlsContext> tls_b = nullptr) {
    a_ = std::make_unique<Transport>(&loop_, TransportOptions{1, "test", address_a_, tls_a, hello_timeout_ms_}, rec_a_);
    b_ = std::make_unique<Transport>(&loop_, TransportOptions{2, "test", address_b_, tls_b, hello_timeout_ms_}, rec_b_);
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

  int64_t hello_timeout_ms_ = kHelloTimeoutMs;  // set before start()
  uv_loop_t loop_{};
  std::string address_a_, address_b_;
  Recorder rec_a_, rec_b_;
  std::unique_ptr<Transport> a_, b_;
};

}  // namespace mailbox
