// transport.hpp: the Raft transport between nodes: TCP on the node's libuv
// loop, framed, versioned, checksummed; snapshot files streamed in chunks.
//
// What it is for: the driver's messages (raft_codec.hpp) go to other nodes
// and theirs come in. Each node connects out to every peer it sends to and
// accepts the peers' connections; a message travels on its sender's
// connection, so a follower's AppendEntries and InstallSnapshot from one
// leader arrive in order.
//
// Wire (docs/PROTOCOL.md, "Raft transport"): every frame is
//   body bytes u32 | kind u8 | version u8 | 0 u16 | xxh3(body) u64 | body
// Kinds: HELLO (the connecting node's cluster name, id and Raft address:
// the first frame on a connection), RAFT (one encoded message), SNAPSHOT
// (the metadata of a snapshot file about to follow: transfer id, file
// bytes, and the InstallSnapshot message), CHUNK (transfer id, offset,
// bytes of that file, in order), FORWARD (request id, then a request one
// node hands another: a client's query or publication, opaque here) and
// FORWARD_REPLY (request id, then the answer, sent back on the connection
// the FORWARD came in on: the only frame a connection's acceptor writes).
// A frame that is too large, fails its
// checksum, has an unknown kind or version, or whose body does not decode
// is logged and closes the connection: it never reaches libraft. A HELLO
// from another cluster, or a message before HELLO, closes it too.
//
// Security (issue #13): with `TransportOptions::tls` set (secure mode) every
// connection is mutual TLS 1.3 (tls_stream.hpp) under the framing above,
// which runs unchanged over it (Connection's byte stream: `write_wire` and
// `on_wire_bytes` in transport.cpp). The peer is pinned by its certificate:
// an outgoing connection to node N needs a certificate naming `node-N`, and
// an accepted one whose HELLO claims id N needs the same; anything else
// (plain TCP, a certificate from another CA, a client's certificate, a node
// posing as another) is logged, counted in `connections_refused`, and closed
// before any frame reaches the handler.
//
// Forwarding is at most once: a FORWARD is written once, on a live
// connection, or refused (`forward` returns false: nothing was sent); if
// that connection closes before the reply, the request is reported lost
// (`on_forward_lost`: it may or may not have been acted on). TCP never
// delivers it twice, whatever happens to the network.
//
// Flow control: a connection queues at most kMaxQueuedBytes of frames; a
// message that does not fit is dropped (Raft re-sends); a FORWARD that does
// not fit is refused; a FORWARD_REPLY that does not fit closes the
// connection (its sender hears the request was lost). A snapshot is read
// from its file a chunk at a time, only while the queue is short, through
// the owner's ChunkReader (off the loop), so memory stays bounded at both
// ends (the receiver writes each chunk to its staging file as it comes).
//
// Threads: everything on the loop thread. Ownership: the transport owns its
// sockets and queues; callbacks get views valid during the call.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/errors.hpp"
#include "replication/raft_codec.hpp"
#include "replication/tls_stream.hpp"

namespace mailbox {

inline constexpr uint8_t kTransportVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 16;
inline constexpr size_t kMaxFrameBodyBytes = kMaxRaftMessageBytes + 1024;
inline constexpr size_t kMaxQueuedBytes = 64ULL << 20;
inline constexpr size_t kSnapshotChunkBytes = 1ULL << 20;
// Queue below which the next snapshot chunk is read.
inline constexpr size_t kSnapshotChunkLowWaterBytes = 4ULL << 20;
inline constexpr int64_t kReconnectInitialMs = 50;
inline constexpr int64_t kReconnectMaxMs = 2000;

enum class FrameKind : uint8_t {
  kHello = 1,
  kRaft = 2,
  kSnapshot = 3,
  kChunk = 4,
  kForward = 5,
  kForwardReply = 6,
};

// Appends one frame to `out`.
void append_frame(FrameKind kind, std::string_view body, std::string* out);
// Parses the frame at the start of `bytes`: 0 when more bytes are needed,
// the frame's size when whole, or an error.
struct ParsedFrame {
  FrameKind kind = FrameKind::kRaft;
  std::string_view body;
};
Status parse_frame(std::string_view bytes, size_t* consumed, ParsedFrame* frame);

class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // A message from node `from` (its address as it said in its HELLO).
  virtual void on_raft_message(uint64_t from, const std::string& from_address, DecodedMessage message) = 0;
  // The next piece of a snapshot file node `from` streams: `offset` 0
  // starts a transfer (with its metadata and size). Returns false to
  // abandon the transfer.
  virtual bool on_snapshot_chunk(uint64_t from, const std::string& from_address, uint64_t transfer,
                                 const raft_message& metadata, uint64_t file_bytes, uint64_t offset,
                                 std::string_view bytes) = 0;
  // A transfer from `from` broke off (its connection closed).
  virtual void on_snapshot_abandoned(uint64_t from, uint64_t transfer) = 0;
  // Reads `length` bytes of snapshot file `path` at `offset` off the loop,
  // then calls `done` on the loop (empty on an error).
  virtual void read_snapshot_chunk(const std::string& path, uint64_t offset, size_t length,
                                   std::function<void(bool ok, std::string bytes)> done) = 0;
  // A request node `from` forwarded here, to be answered (once at most)
  // through `Transport::reply_forward(connection, id, ...)`.
  virtual void on_forward(uint64_t from, uint64_t connection, uint64_t id, std::string_view request) = 0;
  // The answer to request `id` this node forwarded to node `to`.
  virtual void on_forward_reply(uint64_t to, uint64_t id, std::string_view reply) = 0;
  // Request `id` was sent to node `to`, whose connection then closed before
  // the answer came: it may or may not have been acted on.
  virtual void on_forward_lost(uint64_t to, uint64_t id) = 0;
};

struct TransportOptions {
  uint64_t node_id = 0;
  std::string cluster;
  std::string listen_address;  // host:port
  // Secure mode: mutual TLS with this context on every connection; null
  // for plain TCP (open mode, loopback only).
  std::shared_ptr<const TlsContext> tls;
};

struct TransportCounters {
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t messages_dropped = 0;      // a full queue, or no connection
  uint64_t connections_refused = 0;   // bad HELLO, bad frame, failed TLS or a certificate naming another node
  uint64_t snapshots_sent = 0;
  uint64_t forwards_sent = 0;
  uint64_t forwards_received = 0;
  uint64_t forwards_lost = 0;
};

class Transport {
 public:
  Transport(uv_loop_t* loop, TransportOptions options, TransportHandler& handler);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  Status listen();
  // Sends an encoded message body to node `to` at `address`.
  void send(uint64_t to, const std::string& address, std::string body);
  // Streams snapshot file `path` (of `file_bytes`) to node `to`, announced
  // by `metadata` (an InstallSnapshot). One transfer per peer: the same
  // snapshot again is ignored while it streams; another one replaces it.
  void send_snapshot(uint64_t to, const std::string& address, const raft_message& metadata,
                     const std::string& path, uint64_t file_bytes);
  // Sends request `id` to node `to` over a live connection: true when
  // written (the answer or `on_forward_lost` follows), false when nothing
  // was sent (no connection yet: one is opened; or its queue is full).
  bool forward(uint64_t to, const std::string& address, uint64_t id, std::string_view request);
  // Answers a request `on_forward` delivered; dropped when that connection
  // has closed meanwhile (the sender hears the request was lost).
  void reply_forward(uint64_t connection, uint64_t id, std::string_view reply);
  // Closes every connection and the listener; `done` once all handles closed.
  void close(std::function<void()> done);
  const TransportCounters& counters() const { return counters_; }

  struct Connection;
  struct Peer;

 private:
  friend struct Connection;
  void on_connection(uv_stream_t* server, int status);
  Peer& peer(uint64_t id, const std::string& address);
  void connect(Peer& p);
  void schedule_reconnect(Peer& p);
  void pump_snapshot(Peer& p);
  void connection_closed(Connection* c);
  void maybe_closed();

  uv_loop_t* loop_;
  TransportOptions options_;
  TransportHandler& handler_;
  uv_tcp_t listener_{};
  bool listening_ = false;
  bool closing_ = false;
  std::function<void()> closed_;
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::map<Connection*, std::unique_ptr<Connection>> connections_;
  std::map<uint64_t, Connection*> accepted_;  // accepted connections by serial, for replies
  uint64_t next_serial_ = 1;
  uint64_t next_transfer_ = 1;
  TransportCounters counters_;
};

}  // namespace mailbox
