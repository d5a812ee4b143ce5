#include "cli/bench.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/client.hpp"
#include "cli/histogram.hpp"
#include "cli/zenoh_config.hpp"

namespace mailbox {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kQueryTimeoutMs = 30000;
constexpr const char* kConsumeWait = "1s";  // consumers long-poll an empty mailbox

struct Totals {
  std::mutex mutex;
  Histogram put_latency;
  Histogram consume_latency;
  uint64_t puts = 0;
  uint64_t messages = 0;
  uint64_t errors = 0;
  std::string first_error;
};

uint64_t micros_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

uint64_t count_in_attachment(std::optional<std::string_view> attachment);

// Number of messages in an OK consume reply (single or batch shape).
uint64_t messages_in(const ClientReply& reply, bool batch_shape) {
  if (!batch_shape) return 1;
  return count_in_attachment(reply.attachment);
}

std::string error_code(std::string_view error_payload) {
  auto err = nlohmann::json::parse(error_payload, nullptr, false);
  return err.is_object() ? err.value("code", "") : "";
}

bool is_retryable_error(std::string_view error_payload) {
  const std::string code = error_code(error_payload);
  return code == "unavailable" || code == "unknown_outcome";
}

bool retryable(const ClientReply& reply) { return is_retryable_error(reply.payload); }

uint64_t count_in_attachment(std::optional<std::string_view> attachment) {
  auto meta = nlohmann::json::parse(attachment.value_or("{}"), nullptr, false);
  return meta.is_object() ? meta.value("count", uint64_t{0}) : 0;
}

// One closed-loop client of the callback driver: its next request is sent
// from the completion callback of the previous one.
struct CallbackClient {
  bool producer = true;
  unsigned index = 0;
  std::shared_ptr<zenoh::Session> session;
  std::string key;
  std::string selector;  // the request in flight (kept for a retry)
  uint64_t seq = 0;
  Clock::time_point sent;
  // The outcome of the request in flight, from its reply callback.
  bool replied = false;
  bool ok = false;
  uint64_t messages = 0;
  std::string error_payload;
  Histogram latency;
  uint64_t count = 0;
};

}  // namespace

// --driver callbacks: no thread per client. The done callback of each
// client's request (on a Zenoh thread) settles it and queues the client for
// its next request, which one sender thread sends (a Zenoh callback must
// never send: bridge/cpp/zenoh_bridge.hpp). Each client still has exactly
// one request in flight, as in the threaded driver, and latency is measured
// the same way (send to end of the reply stream).
static void run_callback_clients(const BenchOptions& o, Totals& totals, Clock::time_point measure_from,
                                 Clock::time_point end, const std::string& payload,
                                 const std::vector<std::shared_ptr<zenoh::Session>>& sessions,
                                 const std::function<std::string(unsigned)>& box_of,
                                 const std::function<void(const std::string&)>& note_error) {
  const unsigned n = o.producers + o.consumers;
  std::vector<std::unique_ptr<CallbackClient>> clients;
  for (unsigned i = 0; i < n; ++i) {
    auto c = std::make_unique<CallbackClient>();
    c->producer = i < o.producers;
    c->index = c->producer ? i : i - o.producers;
    c->session = sessions[i % sessions.size()];
    c->key = o.prefix + "/" + box_of(c->index);
    clients.push_back(std::move(c));
  }
  // Clients whose next request is due, with whether it is a new one (false:
  // retry the same); at most one entry per client. `running` counts the
  // clients not finished.
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::pair<CallbackClient*, bool>> due;
  unsigned running = n;
  auto finish = [&] {
    std::lock_guard<std::mutex> lock(queue_mutex);
    if (--running == 0) queue_cv.notify_all();
  };
  auto schedule = [&](CallbackClient& c, bool new_request) {
    std::lock_guard<std::mutex> lock(queue_mutex);
    due.emplace_back(&c, new_request);
    queue_cv.notify_all();
  };
  const std::string attachment = token_attachment(o.token);
  zenoh::GetOptions put_options;
  put_options.timeout_ms = kQueryTimeoutMs;
  put_options.payload = payload;
  zenoh::GetOptions consume_options;
  consume_options.timeout_ms = kQueryTimeoutMs;
  if (!attachment.empty()) {
    put_options.attachment = attachment;
    consume_options.attachment = attachment;
  }

  std::function<void(CallbackClient&, bool)> send;
  auto on_done = [&](CallbackClient& c) {
    const auto done = Clock::now();
    bool next_is_new = true;  // false: retry the same request
    if (!c.replied) {
      // No reply at all (timeout, closed session): stop this client rather
      // than spin.
      note_error("no reply to " + c.selector);
      return finish();
    }
    if (c.producer) {
      if (c.ok) {
        if (c.sent >= measure_from && done <= end) {
          c.latency.record(micros_between(c.sent, done));
          ++c.count;
        }
      } else if (is_retryable_error(c.error_payload)) {
        next_is_new = false;
      } else {
        note_error(c.error_payload);
      }
    } else {
      if (c.ok) {
        if (c.sent >= measure_from && done <= end) {
          c.latency.record(micros_between(c.sent, done));
          c.count += c.messages;
        }
      } else {
        const bool retry = is_retryable_error(c.error_payload);
        if (!retry && error_code(c.error_payload) != "empty") note_error(c.error_payload);
        if (o.rid && retry) next_is_new = false;
      }
    }
    if (done >= end) return finish();
    schedule(c, next_is_new);
  };
  send = [&](CallbackClient& c, bool new_request) {
    if (new_request) {
      if (c.producer) {
        c.selector = c.key + "/put";
        if (o.rid) c.selector += "?rid=b" + std::to_string(c.index) + "-" + std::to_string(c.seq++);
      } else {
        c.selector = c.key + "/consume?wait=" + kConsumeWait;
        if (o.batch > 1) c.selector += ";n=" + std::to_string(o.batch);
        if (o.rid) c.selector += ";rid=c" + std::to_string(c.index) + "-" + std::to_string(c.seq++);
      }
    }
    c.replied = false;
    c.ok = false;
    c.messages = 0;
    c.error_payload.clear();
    // A retried put keeps its first send time, as in the threaded driver.
    if (new_request || !c.producer) c.sent = Clock::now();
    CallbackClient* client = &c;
    c.session->get(
        c.selector, c.producer ? put_options : consume_options,
        [client, &o](const zenoh::Reply& r) {
          // The first reply decides (a cluster sends one per query).
          if (client->replied) return;
          client->replied = true;
          client->ok = r.ok;
          if (!r.ok) {
            client->error_payload = std::string(r.payload);
          } else if (!client->producer) {
            client->messages = o.batch > 1 ? count_in_attachment(r.attachment) : 1;
          }
        },
        [client, &on_done] { on_done(*client); });
  };
  for (auto& c : clients) schedule(*c, true);
  // The sender: this thread.
  for (;;) {
    std::pair<CallbackClient*, bool> next;
    {
      std::unique_lock<std::mutex> lock(queue_mutex);
      queue_cv.wait(lock, [&] { return running == 0 || !due.empty(); });
      if (due.empty()) break;  // every client finished
      next = due.front();
      due.pop_front();
    }
    send(*next.first, next.second);
  }
  std::lock_guard<std::mutex> lock(totals.mutex);
  for (auto& c : clients) {
    if (c->producer) {
      totals.put_latency.merge(c->latency);
      totals.puts += c->count;
    } else {
      totals.consume_latency.merge(c->latency);
      totals.messages += c->count;
    }
  }
}

int run_bench(const BenchOptions& o, bool json) {
  Totals totals;
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup_s));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  const std::string payload(o.message_bytes, 'x');
  std::vector<std::thread> threads;

  auto box_of = [&](unsigned i) {
    return o.mailboxes <= 1 ? o.mailbox : o.mailbox + "-" + std::to_string(i % o.mailboxes);
  };
  auto note_error = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(totals.mutex);
    totals.errors += 1;
    if (totals.first_error.empty()) totals.first_error = what;
  };

  // --sessions K: the clients share K sessions (client i uses session
  // i mod K), opened before any client starts; 0: each its own session.
  std::vector<std::shared_ptr<zenoh::Session>> sessions;
  auto open_sessions = [&](unsigned count) {
    for (unsigned s = 0; s < count; ++s) {
      std::string error;
      std::shared_ptr<zenoh::Session> session = zenoh::Session::open(client_config(o.connect, o.security), &error);
      if (!session) {
        note_error("connect: " + error);
        return;
      }
      sessions.push_back(std::move(session));
    }
  };
  open_sessions(o.sessions);
  if (o.callback_driver) {
    // Each client its own session unless --sessions says otherwise.
    open_sessions(o.sessions == 0 ? o.producers + o.consumers : 0);
    if (totals.errors == 0 && !sessions.empty()) {
      run_callback_clients(o, totals, measure_from, end, payload, sessions, box_of, note_error);
    }
  }
  auto client_for = [&](unsigned index, std::string* error) -> std::unique_ptr<Client> {
    if (o.sessions == 0) return Client::connect(o.connect, ClientAccess{o.security, o.token}, error);
    if (sessions.size() < o.sessions) {
      *error = "a shared session did not open";
      return nullptr;
    }
    return Client::over(sessions[index % sessions.size()], o.token);
  };

  for (unsigned p = 0; p < o.producers && !o.callback_driver; ++p) {
    threads.emplace_back([&, p] {
      std::string error;
      auto client = client_for(p, &error);
      if (!client) return note_error("connect: " + error);
      Histogram latency;
      uint64_t count = 0;
      const std::string key = o.prefix + "/" + box_of(p);
      const double per_producer_rate = o.rate_per_second > 0 ? o.rate_per_second / o.producers : 0;
      const auto interval = per_producer_rate > 0
                                ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_producer_rate))
                                : Clock::duration::zero();
      auto next_send = Clock::now();
      uint64_t seq = 0;
      zenoh::GetOptions options;
      options.timeout_ms = kQueryTimeoutMs;
      options.payload = payload;
      while (Clock::now() < end) {
        if (per_producer_rate > 0) {
          std::this_thread::sleep_until(next_send);
        } else {
          next_send = Clock::now();
        }
        const auto intended = next_send;
        next_send += interval;
        if (!o.acknowledged) {
          client->publish(key, payload, std::nullopt);
          if (intended >= measure_from) ++count;
          continue;
        }
        std::string selector = key + "/put";
        if (o.rid) selector += "?rid=b" + std::to_string(p) + "-" + std::to_string(seq++);
        for (;;) {
          auto replies = client->query(selector, options);
          if (!replies.empty() && replies[0].ok) break;
          if (replies.empty() || retryable(replies[0])) {
            if (Clock::now() >= end) break;
            continue;  // retry (with the same rid, if any)
          }
          note_error(replies[0].payload);
          break;
        }
        const auto done = Clock::now();
        if (intended >= measure_from && done <= end) {
          latency.record(micros_between(intended, done));
          ++count;
        }
      }
      std::lock_guard<std::mutex> lock(totals.mutex);
      totals.put_latency.merge(latency);
      totals.puts += count;
    });
  }

  for (unsigned c = 0; c < o.consumers && !o.callback_driver; ++c) {
    threads.emplace_back([&, c] {
      std::string error;
      auto client = client_for(o.producers + c, &error);
      if (!client) return note_error("connect: " + error);
      Histogram latency;
      uint64_t messages = 0;
      uint64_t seq = 0;
      const std::string key = o.prefix + "/" + box_of(c);
      zenoh::GetOptions options;
      options.timeout_ms = kQueryTimeoutMs;
      while (Clock::now() < end) {
        std::string selector = key + "/consume?wait=" + kConsumeWait;
        if (o.batch > 1) selector += ";n=" + std::to_string(o.batch);
        if (o.rid) selector += ";rid=c" + std::to_string(c) + "-" + std::to_string(seq++);
        const auto sent = Clock::now();
        auto replies = client->query(selector, options);
        const auto done = Clock::now();
        if (replies.empty()) continue;
        if (!replies[0].ok) {
          auto err = nlohmann::json::parse(replies[0].payload, nullptr, false);
          const std::string code = err.is_object() ? err.value("code", "") : "";
          if (code != "empty" && !retryable(replies[0])) note_error(replies[0].payload);
          if (o.rid && retryable(replies[0])) --seq;  // retry with the same rid
          continue;
        }
        if (sent >= measure_from && done <= end) {
          latency.record(micros_between(sent, done));
          messages += messages_in(replies[0], o.batch > 1);
        }
      }
      std::lock_guard<std::mutex> lock(totals.mutex);
      totals.consume_latency.merge(latency);
      totals.messages += messages;
    });
  }
  for (auto& t : threads) t.join();

  const double seconds = o.duration_s;
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  auto summary = [&](const Histogram& h) {
    return nlohmann::json{{"count", h.count()},         {"p50_ms", ms(h.quantile(0.50))},
                          {"p90_ms", ms(h.quantile(0.90))}, {"p99_ms", ms(h.quantile(0.99))},
                          {"p999_ms", ms(h.quantile(0.999))}, {"max_ms", ms(h.max())}};
  };
  nlohmann::json report = {
      {"producers", o.producers},
      {"consumers", o.consumers},
      {"message_bytes", o.message_bytes},
      {"acknowledged", o.acknowledged},
      {"batch", o.batch},
      {"rid", o.rid},
      {"sessions", o.sessions},
      {"driver", o.callback_driver ? "callbacks" : "threads"},
      {"target_rate_per_second", o.rate_per_second},
      {"duration_s", o.duration_s},
      {"warmup_s", o.warmup_s},
      {"puts_per_second", static_cast<double>(totals.puts) / seconds},
      {"messages_consumed_per_second", static_cast<double>(totals.messages) / seconds},
      {"put_latency", summary(totals.put_latency)},
      {"consume_latency", summary(totals.consume_latency)},
      {"errors", totals.errors},
  };
  if (!totals.first_error.empty()) report["first_error"] = totals.first_error;
  if (json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%u producers, %u consumers (%s), %zu B messages, %s puts, batch %u, rid %s, %s, %.0f s (+%.0f s warm-up)\n",
                o.producers, o.consumers,
                ((o.sessions == 0 ? std::string("a session each") : std::to_string(o.sessions) + " shared sessions") +
                 (o.callback_driver ? ", callback driver" : ", a thread each"))
                    .c_str(), o.message_bytes, o.acknowledged ? "acknowledged" : "fire-and-forget",
                o.batch, o.rid ? "on" : "off",
                o.rate_per_second > 0 ? ("target " + std::to_string(static_cast<long>(o.rate_per_second)) + "/s").c_str()
                                      : "closed loop",
                o.duration_s, o.warmup_s);
    std::printf("  puts:     %10.0f /s", report["puts_per_second"].get<double>());
    if (o.acknowledged) {
      const auto& h = totals.put_latency;
      std::printf("   latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f", ms(h.quantile(0.5)),
                  ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.max()));
    }
    std::printf("\n  consumed: %10.0f /s", report["messages_consumed_per_second"].get<double>());
    const auto& c = totals.consume_latency;
    std::printf("   latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f\n", ms(c.quantile(0.5)),
                ms(c.quantile(0.9)), ms(c.quantile(0.99)), ms(c.quantile(0.999)), ms(c.max()));
    if (totals.errors) std::printf("  errors: %llu (first: %s)\n", static_cast<unsigned long long>(totals.errors),
                                   totals.first_error.c_str());
  }
  return totals.errors == 0 ? 0 : 1;
}

}  // namespace mailbox
