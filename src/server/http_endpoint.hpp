// http_endpoint.hpp: mailboxd's HTTP port for operators (`--metrics-listen`):
// `/metrics` (Prometheus text), `/status.json` (the status page's data) and
// `/` (the status page itself, one self-contained HTML file: no asset from
// elsewhere). Off unless configured.
//
// Built on Debian's cpp-httplib (a maintained HTTP library, not our own
// server). Threads: `start` and `stop` from the owning thread; the server
// runs on its own listener thread with a pool of kHttpWorkerThreads workers
// that call the providers. The providers must be thread-safe and must not
// block on the Raft loop or a Zenoh callback (they read snapshots).
// Ownership: the endpoint owns its server and thread; `stop` (or the
// destructor) joins them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/errors.hpp"

namespace httplib {
class Server;
}

namespace mailbox {

// Workers answering requests. Connections beyond them wait in httplib's
// queue; each is bounded in time (read/write timeouts, few keep-alive
// requests), which bounds the queue for the expected clients (a scraper
// and a few browsers).
inline constexpr size_t kHttpWorkerThreads = 2;
inline constexpr int kHttpTimeoutS = 5;
inline constexpr size_t kHttpMaxKeepAliveRequests = 20;

struct HttpProviders {
  std::function<std::string()> metrics;      // Prometheus text
  std::function<std::string()> status_json;  // status_page_json plus the cluster
};

class HttpEndpoint {
 public:
  explicit HttpEndpoint(HttpProviders providers);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds `host:port` (port 0: any free port) and serves on its own thread.
  Status start(const std::string& listen);
  int port() const { return port_; }
  void stop();

 private:
  HttpProviders providers_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// The status page (HTML with its script and styles inline).
const std::string& status_page_html();

// Splits "host:port" (host may be [v6]); false when malformed.
bool split_host_port(const std::string& listen, std::string* host, int* port);

}  // namespace mailbox
