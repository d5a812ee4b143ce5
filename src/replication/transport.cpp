#include "replication/transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/assert.hpp"
#include "util/log.hpp"

namespace mailbox {
namespace {

constexpr size_t kMaxNameBytes = 1024;  // cluster names and addresses in a HELLO

void put16(std::string* out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get(std::string_view b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

// host:port (host a name, an IPv4 address, or [IPv6]).
bool split_address(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return true;
}

std::string hello_body(uint64_t id, const std::string& cluster, const std::string& address) {
  std::string b;
  put64(&b, id);
  put16(&b, static_cast<uint16_t>(cluster.size()));
  b += cluster;
  put16(&b, static_cast<uint16_t>(address.size()));
  b += address;
  return b;
}

bool parse_hello(std::string_view b, uint64_t* id, std::string* cluster, std::string* address) {
  if (b.size() < 8 + 2) return false;
  *id = get(b, 0, 8);
  size_t at = 8;
  const size_t cluster_bytes = static_cast<size_t>(get(b, at, 2));
  at += 2;
  if (cluster_bytes > kMaxNameBytes || b.size() < at + cluster_bytes + 2) return false;
  *cluster = std::string(b.substr(at, cluster_bytes));
  at += cluster_bytes;
  const size_t address_bytes = static_cast<size_t>(get(b, at, 2));
  at += 2;
  if (address_bytes > kMaxNameBytes || b.size() != at + address_bytes) return false;
  *address = std::string(b.substr(at, address_bytes));
  return *id != 0;
}

}  // namespace

void append_frame(FrameKind kind, std::string_view body, std::string* out) {
  MAILBOX_ASSERT(body.size() <= kMaxFrameBodyBytes, "a frame body fits the limit");
  put32(out, static_cast<uint32_t>(body.size()));
  out->push_back(static_cast<char>(kind));
  out->push_back(static_cast<char>(kTransportVersion));
  put16(out, 0);
  put64(out, XXH3_64bits(body.data(), body.size()));
  out->append(body.data(), body.size());
}

Status parse_frame(std::string_view bytes, size_t* consumed, ParsedFrame* frame) {
  *consumed = 0;
  if (bytes.size() < kFrameHeaderBytes) return Status::ok();
  const uint64_t length = get(bytes, 0, 4);
  const uint8_t kind = static_cast<uint8_t>(bytes[4]);
  const uint8_t version = static_cast<uint8_t>(bytes[5]);
  if (length > kMaxFrameBodyBytes) return Status::error(ErrorCode::kInvalidArgument, "frame too large");
  if (version != kTransportVersion) {
    return Status::error(ErrorCode::kInvalidArgument, "transport version " + std::to_string(version));
  }
  if (kind < static_cast<uint8_t>(FrameKind::kHello) || kind > static_cast<uint8_t>(FrameKind::kForwardReply)) {
    return Status::error(ErrorCode::kInvalidArgument, "unknown frame kind " + std::to_string(kind));
  }
  if (get(bytes, 6, 2) != 0) return Status::error(ErrorCode::kInvalidArgument, "reserved bits set");
  if (bytes.size() < kFrameHeaderBytes + length) return Status::ok();
  const std::string_view body = bytes.substr(kFrameHeaderBytes, static_cast<size_t>(length));
  if (XXH3_64bits(body.data(), body.size()) != get(bytes, 8, 8)) {
    return Status::error(ErrorCode::kInvalidArgument, "frame checksum mismatch");
  }
  frame->kind = static_cast<FrameKind>(kind);
  frame->body = body;
  *consumed = kFrameHeaderBytes + static_cast<size_t>(length);
  return Status::ok();
}

// ---------------------------------------------------------------- connections

struct Transport::Connection {
  Transport* transport = nullptr;
  uv_tcp_t handle{};
  bool outbound = false;
  uint64_t serial = 0;   // accepted connections: the key replies find it by
  Peer* peer = nullptr;  // outbound: the peer it serves
  std::set<uint64_t> forwards_in_flight;  // outbound: requests written, not yet answered
  bool hello_seen = false;
  uint64_t remote_id = 0;
  std::string remote_address;
  std::string incoming;    // bytes not yet framed
  size_t incoming_at = 0;  // start of unparsed bytes
  size_t queued_bytes = 0;
  bool closing = false;
  // An incoming snapshot transfer.
  uint64_t transfer = 0;
  uint64_t transfer_bytes = 0;
  uint64_t transfer_received = 0;
  bool transfer_live = false;
  raft_message transfer_metadata{};
  // Secure mode: the TLS state, and frames written before its handshake
  // completed (counted in queued_bytes, encrypted once it has).
  std::unique_ptr<TlsStream> tls;
  std::deque<std::string> before_handshake;

  struct Write {
    uv_write_t request{};
    Connection* connection = nullptr;
    std::string bytes;
  };

  // The byte stream under the framing: plain TCP, or mutual TLS over it
  // (secure mode). write_wire takes frames, on_wire_bytes what the socket
  // read; write_socket and on_plain_bytes are the two sides below and
  // above TLS.
  void write_wire(std::string bytes);
  void on_wire_bytes(const char* data, size_t length);
  void write_socket(std::string bytes);
  void flush_tls();
  void on_plain_bytes(const char* data, size_t length);
  // The TLS handshake completed: an outgoing connection checks the
  // certificate names the node it called, then sends what waited.
  void on_tls_established();
  void refuse(const std::string& why);
  std::string describe() const;

  void send_frame(FrameKind kind, std::string_view body) {
    std::string bytes;
    bytes.reserve(kFrameHeaderBytes + body.size());
    append_frame(kind, body, &bytes);
    transport->counters_.frames_sent += 1;
    transport->counters_.bytes_sent += bytes.size();
    write_wire(std::move(bytes));
  }
  void on_frame(const ParsedFrame& frame);
  void close(const char* why);
  // Open for requests: not closing and, in secure mode, past the handshake
  // (a request is never queued on a link that may yet be refused).
  bool ready() const { return !closing && (tls == nullptr || tls->established()); }
};

struct Transport::Peer {
  Transport* transport = nullptr;
  uint64_t id = 0;
  std::string address;
  Connection* connection = nullptr;  // once connected (HELLO sent)
  bool connecting = false;
  uv_getaddrinfo_t resolve{};
  uv_connect_t connect{};
  uv_timer_t reconnect{};
  bool timer_initialized = false;
  int64_t backoff_ms = kReconnectInitialMs;
  bool wanted = false;              // a forward found no connection: connect even with nothing waiting
  std::deque<std::string> waiting;  // frames while connecting
  size_t waiting_bytes = 0;
  // An outgoing snapshot transfer.
  struct Outgoing {
    uint64_t id = 0;
    uint64_t last_index = 0;
    std::string path;
    uint64_t file_bytes = 0;
    uint64_t next_offset = 0;
    bool read_in_flight = false;
    bool announced = false;
    raft_message metadata{};
  };
  std::unique_ptr<Outgoing> outgoing;
};

void Transport::Connection::write_wire(std::string bytes) {
  if (tls == nullptr) {
    write_socket(std::move(bytes));
    return;
  }
  if (!tls->established()) {
    queued_bytes += bytes.size();
    before_handshake.push_back(std::move(bytes));
    return;
  }
  if (Status s = tls->send(bytes); !s.is_ok()) {
    log_warn("raft transport: %s: %s; closing the connection", describe().c_str(), s.message.c_str());
    close("TLS write failed");
    return;
  }
  flush_tls();
}

void Transport::Connection::flush_tls() {
  std::string out = tls->take_output();
  if (!out.empty()) write_socket(std::move(out));
}

std::string Transport::Connection::describe() const {
  if (outbound || hello_seen) return "node " + std::to_string(remote_id) + " (" + remote_address + ")";
  sockaddr_storage address{};
  int length = sizeof address;
  char host[INET6_ADDRSTRLEN] = "?";
  if (uv_tcp_getpeername(&handle, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    if (address.ss_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&address), host, sizeof host);
    } else if (address.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&address), host, sizeof host);
    }
  }
  return std::string("a connection from ") + host;
}

void Transport::Connection::refuse(const std::string& why) {
  log_warn("raft transport: refused %s: %s", describe().c_str(), why.c_str());
  transport->counters_.connections_refused += 1;
  close("refused");
}

void Transport::Connection::on_tls_established() {
  if (outbound && tls->peer_common_name() != node_subject(remote_id)) {
    refuse("its certificate names '" + tls->peer_common_name() + "', not " + node_subject(remote_id));
    return;
  }
  if (peer != nullptr) peer->backoff_ms = kReconnectInitialMs;
  while (!before_handshake.empty() && !closing) {
    std::string bytes = std::move(before_handshake.front());
    before_handshake.pop_front();
    queued_bytes -= bytes.size();
    write_wire(std::move(bytes));
  }
}

void Transport::Connection::write_socket(std::string bytes) {
  auto* w = new Write();
  w->connection = this;
  w->bytes = std::move(bytes);
  w->request.data = w;
  queued_bytes += w->bytes.size();
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int rv = uv_write(&w->request, reinterpret_cast<uv_stream_t*>(&handle), &buf, 1, [](uv_write_t* req, int status) {
    std::unique_ptr<Write> done(static_cast<Write*>(req->data));
    Connection* c = done->connection;
    c->queued_bytes -= done->bytes.size();
    if (status < 0) {
      c->close(uv_strerror(status));
      return;
    }
    if (c->peer != nullptr && !c->closing) c->transport->pump_snapshot(*c->peer);
  });
  if (rv != 0) {
    queued_bytes -= w->bytes.size();
    delete w;
    close(uv_strerror(rv));
  }
}

void Transport::Connection::on_wire_bytes(const char* data, size_t length) {
  if (tls == nullptr) {
    on_plain_bytes(data, length);
    return;
  }
  const bool was_established = tls->established();
  std::string plain;
  Status s = tls->receive(data, length, &plain);
  flush_tls();  // handshake messages, alerts
  if (!s.is_ok()) {
    if (!was_established) {
      refuse(s.message);
    } else {
      log_warn("raft transport: %s: %s; closing the connection", describe().c_str(), s.message.c_str());
      close("TLS failed");
    }
    return;
  }
  if (!was_established && tls->established()) {
    on_tls_established();
    if (closing) return;
  }
  if (!plain.empty()) on_plain_bytes(plain.data(), plain.size());
}

void Transport::Connection::on_plain_bytes(const char* data, size_t length) {
  incoming.append(data, length);
  while (!closing) {
    size_t consumed = 0;
    ParsedFrame frame;
    Status s = parse_frame(std::string_view(incoming).substr(incoming_at), &consumed, &frame);
    if (!s.is_ok()) {
      log_warn("raft transport: %s from %s: %s; closing the connection",
               hello_seen ? ("node " + std::to_string(remote_id)).c_str() : "an unknown peer",
               remote_address.c_str(), s.message.c_str());
      transport->counters_.connections_refused += 1;
      close("bad frame");
      return;
    }
    if (consumed == 0) break;
    transport->counters_.frames_received += 1;
    transport->counters_.bytes_received += consumed;
    on_frame(frame);
    incoming_at += consumed;
  }
  // Drop what was parsed (keep the partial frame).
  if (incoming_at > 0 && (incoming_at == incoming.size() || incoming_at > (1u << 20))) {
    incoming.erase(0, incoming_at);
    incoming_at = 0;
  }
}

void Transport::Connection::on_frame(const ParsedFrame& frame) {
  Transport& t = *transport;
  if (outbound) {
    // The acceptor writes only answers to our forwarded requests.
    if (frame.kind != FrameKind::kForwardReply || frame.body.size() < 8) {
      close("unexpected data on an outgoing connection");
      return;
    }
    const uint64_t id = get(frame.body, 0, 8);
    if (forwards_in_flight.erase(id) == 0) {
      close("an answer to no request");
      return;
    }
    t.handler_.on_forward_reply(remote_id, id, frame.body.substr(8));
    return;
  }
  if (!hello_seen) {
    std::string cluster;
    if (frame.kind != FrameKind::kHello || !parse_hello(frame.body, &remote_id, &cluster, &remote_address)) {
      log_warn("raft transport: a connection did not start with a HELLO; closing it");
      t.counters_.connections_refused += 1;
      close("no hello");
      return;
    }
    if (cluster != t.options_.cluster || remote_id == t.options_.node_id) {
      log_warn("raft transport: refused node %llu (%s) of cluster '%s': this is node %llu of cluster '%s'",
               static_cast<unsigned long long>(remote_id), remote_address.c_str(), cluster.c_str(),
               static_cast<unsigned long long>(t.options_.node_id), t.options_.cluster.c_str());
      t.counters_.connections_refused += 1;
      close("foreign hello");
      return;
    }
    if (tls != nullptr && tls->peer_common_name() != node_subject(remote_id)) {
      refuse("it says it is node " + std::to_string(remote_id) + " but its certificate names '" +
             tls->peer_common_name() + "'");
      return;
    }
    hello_seen = true;
    return;
  }
  switch (frame.kind) {
    case FrameKind::kHello:
      close("a second hello");
      return;
    case FrameKind::kRaft: {
      DecodedMessage decoded;
      Status s = decode_raft_message(frame.body, &decoded);
      if (!s.is_ok()) {
        log_warn("raft transport: node %llu sent a message that does not decode (%s); closing",
                 static_cast<unsigned long long>(remote_id), s.message.c_str());
        t.counters_.connections_refused += 1;
        close("bad message");
        return;
      }
      if (decoded.message().type == RAFT_INSTALL_SNAPSHOT) {
        close("an InstallSnapshot outside a SNAPSHOT frame");
        return;
      }
      t.handler_.on_raft_message(remote_id, remote_address, std::move(decoded));
      return;
    }
    case FrameKind::kSnapshot: {
      if (frame.body.size() < 16) {
        close("bad snapshot frame");
        return;
      }
      DecodedMessage decoded;
      Status s = decode_raft_message(frame.body.substr(16), &decoded);
      if (!s.is_ok() || decoded.message().type != RAFT_INSTALL_SNAPSHOT) {
        close("bad snapshot frame");
        return;
      }
      if (transfer_live) t.handler_.on_snapshot_abandoned(remote_id, transfer);
      transfer = get(frame.body, 0, 8);
      transfer_bytes = get(frame.body, 8, 8);
      transfer_received = 0;
      transfer_metadata = decoded.message();
      transfer_live = t.handler_.on_snapshot_chunk(remote_id, remote_address, transfer, transfer_metadata,
                                                  transfer_bytes, 0, std::string_view());
      return;
    }
    case FrameKind::kForward: {
      if (frame.body.size() < 8) {
        close("bad forward frame");
        return;
      }
      t.counters_.forwards_received += 1;
      t.handler_.on_forward(remote_id, serial, get(frame.body, 0, 8), frame.body.substr(8));
      return;
    }
    case FrameKind::kForwardReply:
      close("an answer on an accepted connection");
      return;
    case FrameKind::kChunk: {
      if (frame.body.size() < 16) {
        close("bad chunk frame");
        return;
      }
      const uint64_t id = get(frame.body, 0, 8);
      const uint64_t offset = get(frame.body, 8, 8);
      const std::string_view bytes = frame.body.substr(16);
      if (!transfer_live || id != transfer) return;  // abandoned: skip the rest of it
      if (offset != transfer_received || transfer_received + bytes.size() > transfer_bytes) {
        close("snapshot chunk out of order");
        return;
      }
      transfer_received += bytes.size();
      transfer_live = t.handler_.on_snapshot_chunk(remote_id, remote_address, transfer, transfer_metadata,
                                                  transfer_bytes, offset, bytes);
      if (transfer_received == transfer_bytes) transfer_live = false;
      return;
    }
  }
}

void Transport::Connection::close(const char* why) {
  if (closing) return;
  closing = true;
  if (!transport->closing_) {
    log_debug("raft transport: closing the connection %s node %llu: %s", outbound ? "to" : "from",
              static_cast<unsigned long long>(outbound && peer ? peer->id : remote_id), why);
  }
  if (transfer_live) {
    transfer_live = false;
    transport->handler_.on_snapshot_abandoned(remote_id, transfer);
  }
  if (serial != 0) transport->accepted_.erase(serial);
  if (!forwards_in_flight.empty()) {
    std::set<uint64_t> lost;
    lost.swap(forwards_in_flight);
    for (uint64_t id : lost) {
      transport->counters_.forwards_lost += 1;
      transport->handler_.on_forward_lost(remote_id, id);
    }
  }
  if (peer != nullptr && peer->connection == this) {
    peer->connection = nullptr;
    peer->outgoing.reset();  // libraft sends it again
    if (!transport->closing_) transport->schedule_reconnect(*peer);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&handle), [](uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    c->transport->connection_closed(c);
  });
}

namespace {
void start_reading(uv_tcp_t* handle) {
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(handle),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<Transport::Connection*>(stream->data);
        if (n > 0) conn->on_wire_bytes(buf->base, static_cast<size_t>(n));
        delete[] buf->base;
        if (n < 0) conn->close(n == UV_EOF ? "closed by the peer" : uv_strerror(static_cast<int>(n)));
      });
}
}  // namespace

// ---------------------------------------------------------------- transport

Transport::Transport(uv_loop_t* loop, TransportOptions options, TransportHandler& handler)
    : loop_(loop), options_(std::move(options)), handler_(handler) {}

Transport::~Transport() { MAILBOX_ASSERT(connections_.empty(), "close the transport before destroying it"); }

Status Transport::listen() {
  std::string host, port;
  if (!split_address(options_.listen_address, &host, &port)) {
    return Status::error(ErrorCode::kInvalidArgument, "bad Raft address " + options_.listen_address +
                                                          ": use host:port");
  }
  uv_getaddrinfo_t resolve{};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rv = uv_getaddrinfo(loop_, &resolve, nullptr, host.c_str(), port.c_str(), &hints);  // synchronous (no cb)
  if (rv != 0) {
    return Status::error(ErrorCode::kInvalidArgument, "cannot resolve the Raft address " + options_.listen_address +
                                                          ": " + uv_strerror(rv));
  }
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  listening_ = true;
  rv = uv_tcp_bind(&listener_, resolve.addrinfo->ai_addr, 0);
  uv_freeaddrinfo(resolve.addrinfo);
  if (rv == 0) {
    rv = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 64, [](uv_stream_t* server, int status) {
      static_cast<Transport*>(server->data)->on_connection(server, status);
    });
  }
  if (rv != 0) {
    return Status::error(ErrorCode::kInternal, "cannot listen on the Raft address " + options_.listen_address + ": " +
                                                   uv_strerror(rv));
  }
  return Status::ok();
}

void Transport::on_connection(uv_stream_t* server, int status) {
  if (status < 0 || closing_) return;
  auto c = std::make_unique<Connection>();
  c->transport = this;
  uv_tcp_init(loop_, &c->handle);
  c->handle.data = c.get();
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
    Connection* raw = c.get();
    connections_.emplace(raw, std::move(c));
    raw->close("accept failed");
    return;
  }
  uv_tcp_nodelay(&c->handle, 1);
  if (options_.tls != nullptr) c->tls = std::make_unique<TlsStream>(options_.tls, TlsStream::Role::kServer);
  Connection* raw = c.get();
  raw->serial = next_serial_++;
  accepted_[raw->serial] = raw;
  connections_.emplace(raw, std::move(c));
  start_reading(&raw->handle);
}

Transport::Peer& Transport::peer(uint64_t id, const std::string& address) {
  auto it = peers_.find(id);
  if (it == peers_.end()) {
    auto p = std::make_unique<Peer>();
    p->transport = this;
    p->id = id;
    p->address = address;
    it = peers_.emplace(id, std::move(p)).first;
  }
  Peer& p = *it->second;
  if (p.address != address) {
    // It moved (a new configuration): reconnect.
    p.address = address;
    if (p.connection != nullptr) p.connection->close("address changed");
  }
  return p;
}

void Transport::send(uint64_t to, const std::string& address, std::string body) {
  if (closing_) return;
  Peer& p = peer(to, address);
  if (p.connection != nullptr && !p.connection->closing) {
    if (p.connection->queued_bytes + body.size() > kMaxQueuedBytes) {
      counters_.messages_dropped += 1;
      return;
    }
    p.connection->send_frame(FrameKind::kRaft, body);
    return;
  }
  if (p.waiting_bytes + body.size() <= kMaxQueuedBytes) {
    std::string frame;
    append_frame(FrameKind::kRaft, body, &frame);
    p.waiting_bytes += frame.size();
    p.waiting.push_back(std::move(frame));
  } else {
    counters_.messages_dropped += 1;
  }
  if (!p.connecting && (!p.timer_initialized || !uv_is_active(reinterpret_cast<uv_handle_t*>(&p.reconnect)))) {
    connect(p);
  }
}

bool Transport::forward(uint64_t to, const std::string& address, uint64_t id, std::string_view request) {
  if (closing_ || request.size() + 8 > kMaxFrameBodyBytes) return false;
  Peer& p = peer(to, address);
  if (p.connection == nullptr || !p.connection->ready()) {
    p.wanted = true;
    if (!p.connecting && (!p.timer_initialized || !uv_is_active(reinterpret_cast<uv_handle_t*>(&p.reconnect)))) {
      connect(p);
    }
    return false;
  }
  if (p.connection->queued_bytes + request.size() > kMaxQueuedBytes) return false;
  MAILBOX_ASSERT(p.connection->forwards_in_flight.count(id) == 0, "a forwarded request id is used once");
  std::string body;
  body.reserve(8 + request.size());
  put64(&body, id);
  body.append(request.data(), request.size());
  p.connection->forwards_in_flight.insert(id);
  counters_.forwards_sent += 1;
  p.connection->send_frame(FrameKind::kForward, body);
  return true;
}

void Transport::reply_forward(uint64_t connection, uint64_t id, std::string_view reply) {
  auto it = accepted_.find(connection);
  if (closing_ || it == accepted_.end() || it->second->closing) return;
  Connection* c = it->second;
  if (reply.size() + 8 > kMaxFrameBodyBytes || c->queued_bytes + reply.size() > kMaxQueuedBytes) {
    c->close("an answer does not fit the queue");
    return;
  }
  std::string body;
  body.reserve(8 + reply.size());
  put64(&body, id);
  body.append(reply.data(), reply.size());
  c->send_frame(FrameKind::kForwardReply, body);
}

// Resolves the peer's address, then connects a new outgoing Connection;
// once connected it says HELLO and sends what waited.
void Transport::connect(Peer& p) {
  if (closing_ || p.connecting || p.connection != nullptr) return;
  std::string host, port;
  if (!split_address(p.address, &host, &port)) {
    log_warn("raft transport: bad address %s for node %llu", p.address.c_str(), static_cast<unsigned long long>(p.id));
    return;
  }
  p.connecting = true;
  p.resolve.data = &p;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const int rv = uv_getaddrinfo(
      loop_, &p.resolve,
      [](uv_getaddrinfo_t* req, int status, addrinfo* result) {
        Peer& peer = *static_cast<Peer*>(req->data);
        Transport* t = peer.transport;
        if (t->closing_ || status != 0 || result == nullptr) {
          if (result) uv_freeaddrinfo(result);
          peer.connecting = false;
          if (!t->closing_) t->schedule_reconnect(peer);
          t->maybe_closed();
          return;
        }
        auto c = std::make_unique<Connection>();
        c->transport = t;
        c->outbound = true;
        c->remote_id = peer.id;
        c->remote_address = peer.address;
        uv_tcp_init(t->loop_, &c->handle);
        c->handle.data = c.get();
        Connection* raw = c.get();
        t->connections_.emplace(raw, std::move(c));
        peer.connect.data = raw;
        const int rv2 = uv_tcp_connect(&peer.connect, &raw->handle, result->ai_addr, [](uv_connect_t* req, int status) {
          auto* conn = static_cast<Connection*>(req->data);
          Transport* tr = conn->transport;
          auto it = tr->peers_.find(conn->remote_id);
          Peer* peer = it == tr->peers_.end() ? nullptr : it->second.get();
          if (peer) peer->connecting = false;
          if (status != 0 || tr->closing_ || peer == nullptr || conn->closing) {
            conn->close(status != 0 ? uv_strerror(status) : "shutting down");
            if (peer && !tr->closing_) tr->schedule_reconnect(*peer);
            return;
          }
          conn->peer = peer;
          peer->connection = conn;
          peer->wanted = false;
          // A TLS link resets the backoff only once its peer is verified.
          if (tr->options_.tls == nullptr) peer->backoff_ms = kReconnectInitialMs;
          uv_tcp_nodelay(&conn->handle, 1);
          start_reading(&conn->handle);
          if (tr->options_.tls != nullptr) {
            // The HELLO and what waited go out once the handshake completes.
            conn->tls = std::make_unique<TlsStream>(tr->options_.tls, TlsStream::Role::kClient);
            if (Status s = conn->tls->start(); !s.is_ok()) {
              conn->refuse(s.message);
              return;
            }
            conn->flush_tls();
          }
          conn->send_frame(FrameKind::kHello, hello_body(tr->options_.node_id, tr->options_.cluster,
                                                           tr->options_.listen_address));
          while (!peer->waiting.empty()) {
            std::string frame = std::move(peer->waiting.front());
            peer->waiting.pop_front();
            peer->waiting_bytes -= frame.size();
            tr->counters_.frames_sent += 1;
            tr->counters_.bytes_sent += frame.size();
            conn->write_wire(std::move(frame));
          }
          tr->pump_snapshot(*peer);
        });
        uv_freeaddrinfo(result);
        if (rv2 != 0) {
          peer.connecting = false;
          raw->close(uv_strerror(rv2));
          t->schedule_reconnect(peer);
        }
      },
      host.c_str(), port.c_str(), &hints);
  if (rv != 0) {
    p.connecting = false;
    schedule_reconnect(p);
  }
}

void Transport::schedule_reconnect(Peer& p) {
  if (closing_) return;
  if (!p.timer_initialized) {
    uv_timer_init(loop_, &p.reconnect);
    p.timer_initialized = true;
    p.reconnect.data = &p;
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&p.reconnect))) return;
  const uint64_t delay = static_cast<uint64_t>(p.backoff_ms);
  p.backoff_ms = std::min(kReconnectMaxMs, p.backoff_ms * 2);
  uv_timer_start(
      &p.reconnect,
      [](uv_timer_t* timer) {
        Peer& peer = *static_cast<Peer*>(timer->data);
        Transport* t = peer.transport;
        // Reconnect when there is something to send.
        if (!t->closing_ && peer.connection == nullptr && (!peer.waiting.empty() || peer.outgoing || peer.wanted)) {
          t->connect(peer);
        }
      },
      delay, 0);
}

void Transport::send_snapshot(uint64_t to, const std::string& address, const raft_message& metadata,
                              const std::string& path, uint64_t file_bytes) {
  if (closing_) return;
  Peer& p = peer(to, address);
  if (p.outgoing && p.outgoing->last_index == metadata.install_snapshot.last_index) return;  // streaming already
  auto out = std::make_unique<Peer::Outgoing>();
  out->id = next_transfer_++;
  out->last_index = metadata.install_snapshot.last_index;
  out->path = path;
  out->file_bytes = file_bytes;
  out->metadata = metadata;
  out->metadata.install_snapshot.conf = {};
  out->metadata.install_snapshot.data = {};
  p.outgoing = std::move(out);
  log_info("raft transport: sending snapshot %llu (%llu bytes) to node %llu",
           static_cast<unsigned long long>(p.outgoing->last_index), static_cast<unsigned long long>(file_bytes),
           static_cast<unsigned long long>(to));
  if (p.connection == nullptr && !p.connecting) connect(p);
  pump_snapshot(p);
}

// Streams the peer's snapshot a chunk at a time while its queue is short.
void Transport::pump_snapshot(Peer& p) {
  if (closing_ || !p.outgoing || p.connection == nullptr || p.connection->closing) return;
  Peer::Outgoing& out = *p.outgoing;
  if (!out.announced) {
    std::string body;
    put64(&body, out.id);
    put64(&body, out.file_bytes);
    encode_raft_message(out.metadata, &body);
    p.connection->send_frame(FrameKind::kSnapshot, body);
    out.announced = true;
  }
  if (out.read_in_flight || p.connection->queued_bytes >= kSnapshotChunkLowWaterBytes) return;
  if (out.next_offset >= out.file_bytes) {
    counters_.snapshots_sent += 1;
    log_info("raft transport: snapshot %llu sent to node %llu", static_cast<unsigned long long>(out.last_index),
             static_cast<unsigned long long>(p.id));
    p.outgoing.reset();
    return;
  }
  out.read_in_flight = true;
  const uint64_t transfer = out.id;
  const uint64_t offset = out.next_offset;
  const size_t length = static_cast<size_t>(std::min<uint64_t>(kSnapshotChunkBytes, out.file_bytes - offset));
  const uint64_t peer_id = p.id;
  handler_.read_snapshot_chunk(out.path, offset, length, [this, peer_id, transfer, offset](bool ok, std::string bytes) {
    auto it = peers_.find(peer_id);
    if (it == peers_.end() || closing_) return;
    Peer& peer = *it->second;
    if (!peer.outgoing || peer.outgoing->id != transfer) return;
    peer.outgoing->read_in_flight = false;
    if (!ok || bytes.empty()) {
      log_warn("raft transport: cannot read snapshot %s to send it", peer.outgoing->path.c_str());
      peer.outgoing.reset();
      return;
    }
    if (peer.connection == nullptr || peer.connection->closing) return;
    std::string body;
    body.reserve(16 + bytes.size());
    put64(&body, transfer);
    put64(&body, offset);
    body += bytes;
    peer.connection->send_frame(FrameKind::kChunk, body);
    peer.outgoing->next_offset = offset + bytes.size();
    pump_snapshot(peer);
  });
}

void Transport::connection_closed(Connection* c) {
  connections_.erase(c);
  maybe_closed();
}

void Transport::close(std::function<void()> done) {
  closing_ = true;
  closed_ = std::move(done);
  std::vector<Connection*> open;
  for (auto& [raw, c] : connections_) open.push_back(raw);
  for (auto* c : open) c->close("shutting down");
  for (auto& [id, p] : peers_) {
    p->outgoing.reset();
    if (p->timer_initialized) {
      uv_timer_stop(&p->reconnect);
      uv_close(reinterpret_cast<uv_handle_t*>(&p->reconnect), nullptr);
    }
    if (p->connecting) uv_cancel(reinterpret_cast<uv_req_t*>(&p->resolve));  // fails if already connecting
  }
  if (listening_) {
    listening_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      static_cast<Transport*>(h->data)->maybe_closed();
    });
    return;
  }
  maybe_closed();
}

void Transport::maybe_closed() {
  if (!closing_ || !closed_ || listening_ || !connections_.empty()) return;
  for (auto& [id, p] : peers_) {
    if (p->connecting) return;
  }
  auto done = std::move(closed_);
  closed_ = nullptr;
  done();
}

}  // namespace mailbox
