// nodelay_transport.hpp: libraft's TCP transport with TCP_NODELAY on every
// connection.
//
// What it is for: libraft 0.22's raft_uv_tcp transport leaves Nagle's
// algorithm on, so small AppendEntries messages wait for delayed ACKs
// (measured: p99 of 43 ms on a 3-node loopback cluster). This decorator
// forwards every call to an inner raft_uv_tcp transport and sets
// TCP_NODELAY on each stream it hands to libraft, accepted or connected.
//
// Threads: the libuv loop thread only, like the transport it wraps.
// Ownership: the caller owns the NoDelayTransport; pass `&t->outer` to
// raft_uv_init; it must outlive the raft_io; release with
// nodelay_transport_close after the raft_io is closed.
#pragma once

#include "replication/raft_include.hpp"

namespace mailbox {

struct NoDelayTransport {
  raft_uv_transport outer{};  // first member: libraft sees this one
  raft_uv_transport inner{};
  raft_uv_accept_cb accept_cb = nullptr;
  raft_uv_transport_close_cb close_cb = nullptr;
};

// Initialises the inner TCP transport on `loop` and the forwarding outer one.
int nodelay_transport_init(NoDelayTransport* t, uv_loop_t* loop);
void nodelay_transport_close(NoDelayTransport* t);

}  // namespace mailbox
