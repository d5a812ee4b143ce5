// tls_stream.hpp: mutual TLS for the Raft transport (issue #13 item 5),
// OpenSSL 3 over memory BIOs so it runs inside the transport's libuv byte
// stream without owning a socket.
//
// What it is for: in secure mode every connection between nodes (Raft
// messages, snapshot chunks, forwarded client requests) runs over TLS 1.3
// with a certificate on both ends, each signed by the cluster's CA. The
// transport (transport.cpp) then checks that the certificate names the node
// at the other end: a node's certificate carries the common name
// `node-<id>` (node_subject()), the same subject Zenoh's access control
// knows it by. A plain-TCP peer, a certificate from another CA, a client's
// certificate, or a node's certificate claiming another node's id is
// refused before any frame is parsed.
//
// TlsContext holds the SSL_CTX (this node's certificate and key, the CA as
// the only trust anchor, TLS 1.3 only, peer certificates required both
// ways, no session tickets). TlsStream is one connection's TLS state: bytes
// from the socket go into receive(), plaintext comes out; plaintext goes
// into send(); whatever must go to the socket (handshake and records) is
// collected by take_output() after each call.
//
// Threads: a TlsContext is immutable once made and may be shared between
// threads; a TlsStream belongs to its connection's thread (the loop).
// Ownership: TlsContext owns its SSL_CTX; TlsStream owns its SSL and BIOs
// and keeps its context alive (shared_ptr).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/errors.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace mailbox {

// Plaintext read from TLS per SSL_read call (one TLS record is at most 16 KiB).
inline constexpr size_t kTlsReadChunkBytes = 16 * 1024;

// The certificate subject (common name) of node `node_id`.
std::string node_subject(uint64_t node_id);

class TlsContext {
 public:
  // Loads the CA, this node's certificate and its private key (PEM files).
  // `invalid_argument` naming the file that is missing or bad, or a key
  // that does not match the certificate.
  static Status create(const std::string& ca_file, const std::string& certificate_file,
                       const std::string& private_key_file, std::shared_ptr<const TlsContext>* out);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* native() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class TlsStream {
 public:
  enum class Role { kClient, kServer };
  TlsStream(std::shared_ptr<const TlsContext> context, Role role);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Client: starts the handshake (its first flight goes to the output).
  Status start();
  // Bytes from the socket: advances the handshake and appends whatever
  // plaintext they complete to `plaintext`. An error (a failed handshake,
  // a bad record, the peer's close) ends the stream: close the connection.
  Status receive(const char* data, size_t length, std::string* plaintext);
  // Encrypts `plaintext` into the output. Only once established().
  Status send(std::string_view plaintext);
  // What must be written to the socket now (moved out).
  std::string take_output();
  // The handshake completed and the peer's certificate chain verified
  // against the CA.
  bool established() const { return established_; }
  // The common name of the peer's certificate; empty before established().
  const std::string& peer_common_name() const { return peer_common_name_; }

 private:
  Status fail(const char* what);
  Status finish_handshake();

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* network_in_ = nullptr;   // socket -> TLS (owned by ssl_)
  BIO* network_out_ = nullptr;  // TLS -> socket (owned by ssl_)
  bool established_ = false;
  bool failed_ = false;
  std::string peer_common_name_;
};

}  // namespace mailbox
