// The Raft transport decorator sets TCP_NODELAY on both ends of a
// connection (libraft 0.22's TCP transport does not).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

#include "replication/nodelay_transport.hpp"

namespace mailbox {
namespace {

int nodelay_of(uv_stream_t* stream) {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(stream), &fd) != 0) return -1;
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length) != 0) return -1;
  return value;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t length = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  close(fd);
  return ntohs(addr.sin_port);
}

struct Result {
  int accepted_nodelay = -2;
  int connected_nodelay = -2;
  uv_stream_t* accepted = nullptr;
  uv_stream_t* connected = nullptr;
};
Result* g_result = nullptr;

TEST(NoDelayTransport, BothEndsOfAConnectionHaveNoDelay) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  NoDelayTransport server;
  NoDelayTransport client;
  ASSERT_EQ(nodelay_transport_init(&server, &loop), 0);
  ASSERT_EQ(nodelay_transport_init(&client, &loop), 0);
  const std::string server_address = "127.0.0.1:" + std::to_string(free_port());
  const std::string client_address = "127.0.0.1:" + std::to_string(free_port());
  ASSERT_EQ(server.outer.init(&server.outer, 1, server_address.c_str()), 0);
  ASSERT_EQ(client.outer.init(&client.outer, 2, client_address.c_str()), 0);
  Result result;
  g_result = &result;
  ASSERT_EQ(server.outer.listen(&server.outer,
                                [](raft_uv_transport*, raft_id, const char*, uv_stream_t* stream) {
                                  g_result->accepted_nodelay = nodelay_of(stream);
                                  g_result->accepted = stream;
                                }),
            0);
  raft_uv_connect request{};
  ASSERT_EQ(client.outer.connect(&client.outer, &request, 1, server_address.c_str(),
                                 [](raft_uv_connect*, uv_stream_t* stream, int status) {
                                   ASSERT_EQ(status, 0);
                                   g_result->connected_nodelay = nodelay_of(stream);
                                   g_result->connected = stream;
                                 }),
            0);
  for (int i = 0; i < 1000 && (result.accepted == nullptr || result.connected == nullptr); ++i) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  EXPECT_EQ(result.connected_nodelay, 1);
  EXPECT_EQ(result.accepted_nodelay, 1);
  // Tear down: the streams belong to us now.
  auto free_stream = [](uv_handle_t* h) { raft_free(h); };
  if (result.accepted) uv_close(reinterpret_cast<uv_handle_t*>(result.accepted), free_stream);
  if (result.connected) uv_close(reinterpret_cast<uv_handle_t*>(result.connected), free_stream);
  server.outer.close(&server.outer, [](raft_uv_transport*) {});
  client.outer.close(&client.outer, [](raft_uv_transport*) {});
  uv_run(&loop, UV_RUN_DEFAULT);
  nodelay_transport_close(&server);
  nodelay_transport_close(&client);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace mailbox
