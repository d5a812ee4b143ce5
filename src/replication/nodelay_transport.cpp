#include "replication/nodelay_transport.hpp"

#include <cstring>
#include <new>

namespace mailbox {
namespace {

NoDelayTransport* from_outer(raft_uv_transport* t) { return reinterpret_cast<NoDelayTransport*>(t); }
NoDelayTransport* from_inner(raft_uv_transport* t) { return static_cast<NoDelayTransport*>(t->data); }

void set_nodelay(uv_stream_t* stream) {
  if (stream != nullptr && stream->type == UV_TCP) uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(stream), 1);
}

void copy_error(NoDelayTransport* t) { std::memcpy(t->outer.errmsg, t->inner.errmsg, sizeof t->outer.errmsg); }

// A connect request of libraft's, wrapped so that the stream can be set up
// before libraft sees it.
struct Connect {
  raft_uv_connect inner{};
  raft_uv_connect* outer = nullptr;
  raft_uv_connect_cb cb = nullptr;
};

int do_init(raft_uv_transport* t, raft_id id, const char* address) {
  NoDelayTransport* self = from_outer(t);
  const int rv = self->inner.init(&self->inner, id, address);
  if (rv != 0) copy_error(self);
  return rv;
}

void on_accept(raft_uv_transport* inner, raft_id id, const char* address, uv_stream_t* stream) {
  NoDelayTransport* self = from_inner(inner);
  set_nodelay(stream);
  self->accept_cb(&self->outer, id, address, stream);
}

int do_listen(raft_uv_transport* t, raft_uv_accept_cb cb) {
  NoDelayTransport* self = from_outer(t);
  self->accept_cb = cb;
  const int rv = self->inner.listen(&self->inner, &on_accept);
  if (rv != 0) copy_error(self);
  return rv;
}

void on_connect(raft_uv_connect* req, uv_stream_t* stream, int status) {
  Connect* c = static_cast<Connect*>(req->data);
  if (status == 0) set_nodelay(stream);
  raft_uv_connect* outer = c->outer;
  raft_uv_connect_cb cb = c->cb;
  delete c;
  cb(outer, stream, status);
}

int do_connect(raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address, raft_uv_connect_cb cb) {
  NoDelayTransport* self = from_outer(t);
  auto* c = new (std::nothrow) Connect();
  if (c == nullptr) return RAFT_NOMEM;
  c->outer = req;
  c->cb = cb;
  c->inner.data = c;
  const int rv = self->inner.connect(&self->inner, &c->inner, id, address, &on_connect);
  if (rv != 0) {
    copy_error(self);
    delete c;
  }
  return rv;
}

void on_close(raft_uv_transport* inner) {
  NoDelayTransport* self = from_inner(inner);
  if (self->close_cb) self->close_cb(&self->outer);
}

void do_close(raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  NoDelayTransport* self = from_outer(t);
  self->close_cb = cb;
  self->inner.close(&self->inner, &on_close);
}

}  // namespace

int nodelay_transport_init(NoDelayTransport* t, uv_loop_t* loop) {
  t->inner.version = 1;
  const int rv = raft_uv_tcp_init(&t->inner, loop);
  if (rv != 0) return rv;
  t->inner.data = t;
  t->outer.version = 1;
  t->outer.init = &do_init;
  t->outer.listen = &do_listen;
  t->outer.connect = &do_connect;
  t->outer.close = &do_close;
  return 0;
}

void nodelay_transport_close(NoDelayTransport* t) { raft_uv_tcp_close(&t->inner); }

}  // namespace mailbox
