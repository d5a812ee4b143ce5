// Mutual TLS between nodes (issue #13 item 5): TlsStream alone, piping two
// streams into each other, then the Raft transport over TLS on loopback:
// requests go through, and a peer whose certificate does not name the node
// it claims to be (or that has no TLS at all) is refused before any frame
// reaches the handler.
#include "replication/tls_stream.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "replication/transport.hpp"
#include "test_pki.hpp"
#include "transport_fixture.hpp"

namespace mailbox {
namespace {

using testing_pki::TestCa;

// Two CAs in a temporary directory: the cluster's (nodes 1-3 and the
// client alice) and another one (a "node-2" it vouches for).
struct TwoCas {
  std::string dir;
  std::unique_ptr<TestCa> cluster, other;
  void make() {
    char tmpl[] = "/tmp/mailbox-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    cluster = std::make_unique<TestCa>(dir, "cluster");
    other = std::make_unique<TestCa>(dir, "other");
    cluster->issue("node1", "node-1");
    cluster->issue("node2", "node-2");
    cluster->issue("node3", "node-3");
    cluster->issue("alice", "alice");
    other->issue("foreign2", "node-2");
  }
  void remove() { std::filesystem::remove_all(dir); }
  std::shared_ptr<const TlsContext> context(const TestCa& ca, const std::string& file) {
    std::shared_ptr<const TlsContext> out;
    Status s = TlsContext::create(ca.ca_file(), ca.certificate(file), ca.key(file), &out);
    EXPECT_TRUE(s.is_ok()) << s.message;
    return out;
  }
};

class Pki : public ::testing::Test {
 protected:
  void SetUp() override { pki_.make(); }
  void TearDown() override { pki_.remove(); }
  std::shared_ptr<const TlsContext> context(const TestCa& ca, const std::string& file) {
    return pki_.context(ca, file);
  }
  TwoCas pki_;
};

// Moves bytes between the two streams until neither has anything to say;
// false when either side fails.
bool pump(TlsStream& client, TlsStream& server, std::string* at_client, std::string* at_server) {
  for (int round = 0; round < 20; ++round) {
    std::string to_server = client.take_output();
    std::string to_client = server.take_output();
    if (to_server.empty() && to_client.empty()) return true;
    if (!server.receive(to_server.data(), to_server.size(), at_server).is_ok()) return false;
    if (!client.receive(to_client.data(), to_client.size(), at_client).is_ok()) return false;
  }
  return true;
}

TEST_F(Pki, HandshakeThenDataBothWaysWithThePeersNames) {
  TlsStream client(context(*pki_.cluster, "node1"), TlsStream::Role::kClient);
  TlsStream server(context(*pki_.cluster, "node2"), TlsStream::Role::kServer);
  ASSERT_TRUE(client.start().is_ok());
  std::string at_client, at_server;
  ASSERT_TRUE(pump(client, server, &at_client, &at_server));
  ASSERT_TRUE(client.established() && server.established());
  EXPECT_EQ(client.peer_common_name(), "node-2");
  EXPECT_EQ(server.peer_common_name(), "node-1");
  ASSERT_TRUE(client.send("hello").is_ok());
  const std::string large(1 << 20, 'x');  // bigger than one TLS record
  ASSERT_TRUE(server.send(large).is_ok());
  ASSERT_TRUE(pump(client, server, &at_client, &at_server));
  EXPECT_EQ(at_server, "hello");
  EXPECT_EQ(at_client, large);
}

TEST_F(Pki, ACertificateOfAnotherCaIsRefused) {
  TlsStream client(context(*pki_.other, "foreign2"), TlsStream::Role::kClient);
  TlsStream server(context(*pki_.cluster, "node1"), TlsStream::Role::kServer);
  ASSERT_TRUE(client.start().is_ok());
  std::string at_client, at_server;
  EXPECT_FALSE(pump(client, server, &at_client, &at_server));
  EXPECT_FALSE(server.established());
  EXPECT_TRUE(at_server.empty());
}

TEST_F(Pki, PlainBytesAreRefused) {
  TlsStream server(context(*pki_.cluster, "node1"), TlsStream::Role::kServer);
  std::string frame, plain;
  append_frame(FrameKind::kHello, "not encrypted", &frame);
  Status s = server.receive(frame.data(), frame.size(), &plain);
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_TRUE(plain.empty());
}

TEST_F(Pki, AMissingOrMismatchedFileIsNamed) {
  std::shared_ptr<const TlsContext> out;
  Status s = TlsContext::create(pki_.cluster->ca_file(), pki_.cluster->certificate("node1"), pki_.dir + "/missing.key", &out);
  EXPECT_EQ(s.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message.find("missing.key"), std::string::npos) << s.message;
  s = TlsContext::create(pki_.cluster->ca_file(), pki_.cluster->certificate("node1"), pki_.cluster->key("node2"), &out);
  EXPECT_EQ(s.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message.find("node2.key"), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("mismatch"), std::string::npos) << s.message;
}

// ---------------------------------------------------------------- transport

class TlsTransport : public LoopbackTransports {
 protected:
  TlsTransport() : LoopbackTransports(41000) {}
  void SetUp() override {
    LoopbackTransports::SetUp();
    pki_.make();
    rec_b_.answer = [](std::string_view request) { return "re: " + std::string(request); };
  }
  void TearDown() override {
    LoopbackTransports::TearDown();
    pki_.remove();
  }
  std::shared_ptr<const TlsContext> context(const TestCa& ca, const std::string& file) {
    return pki_.context(ca, file);
  }
  TestCa& cluster() { return *pki_.cluster; }
  TestCa& other() { return *pki_.other; }

  TwoCas pki_;
};

TEST_F(TlsTransport, RequestsAndAnswersGoThroughMutualTls) {
  start(context(cluster(), "node1"), context(cluster(), "node2"));
  ASSERT_TRUE(forward_when_connected(1, std::string(300 * 1024, 'y'), 5000));
  for (uint64_t id = 2; id <= 100; ++id) ASSERT_TRUE(a_->forward(2, address_b_, id, "r" + std::to_string(id)));
  ASSERT_TRUE(run_until([&] { return rec_a_.replies.size() == 100; }));
  EXPECT_EQ(rec_a_.replies[1].second, "re: r2");
  EXPECT_EQ(rec_b_.requests.size(), 100u);
  EXPECT_EQ(a_->counters().connections_refused + b_->counters().connections_refused, 0u);
}

TEST_F(TlsTransport, ANodeWithAnotherNodesCertificateIsRefusedAtItsHello) {
  // Node 1 presents node 3's certificate (valid, same CA) and says it is 1.
  // Its own end of the handshake succeeds (node 2 is who it called), so the
  // request is written; node 2 hangs up at the HELLO and never reads it.
  start(context(cluster(), "node3"), context(cluster(), "node2"));
  forward_when_connected(1, "let me in", 1000);
  ASSERT_TRUE(run_until([&] { return b_->counters().connections_refused >= 1; }));
  run_until([] { return false; }, 200);
  EXPECT_TRUE(rec_b_.requests.empty());
  EXPECT_TRUE(rec_a_.replies.empty());
}

TEST_F(TlsTransport, ACalledNodeWhoseCertificateNamesAnotherIsRefused) {
  // Node 2 answers with a client's certificate: node 1 hangs up first.
  start(context(cluster(), "node1"), context(cluster(), "alice"));
  EXPECT_FALSE(forward_when_connected(1, "to the wrong server", 1000));
  EXPECT_TRUE(rec_b_.requests.empty());
  EXPECT_GE(a_->counters().connections_refused, 1u);
}

TEST_F(TlsTransport, ACertificateOfAnotherCaIsRefused) {
  start(context(other(), "foreign2"), context(cluster(), "node2"));
  EXPECT_FALSE(forward_when_connected(1, "foreign", 1000));
  EXPECT_TRUE(rec_b_.requests.empty());
  // Whichever end verifies first hangs up.
  EXPECT_GE(a_->counters().connections_refused + b_->counters().connections_refused, 1u);
}

TEST_F(TlsTransport, PlainTcpIsRefused) {
  start(nullptr, context(cluster(), "node2"));
  // Plain TCP is "connected" at once, so the request is written; the TLS
  // node hangs up on the first bytes and never hands it on.
  forward_when_connected(1, "plain", 1000);
  ASSERT_TRUE(run_until([&] { return b_->counters().connections_refused >= 1; }));
  run_until([] { return false; }, 200);
  EXPECT_TRUE(rec_b_.requests.empty());
  EXPECT_TRUE(rec_a_.replies.empty());
}

}  // namespace
}  // namespace mailbox
