#include "cli/client.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "cli/zenoh_config.hpp"

namespace mailbox {

std::unique_ptr<Client> Client::connect(const std::vector<std::string>& endpoints, std::string* error) {
  auto session = zenoh::Session::open(client_config(endpoints), error);
  if (!session) return nullptr;
  auto client = std::unique_ptr<Client>(new Client());
  client->session_ = std::move(session);
  return client;
}

std::unique_ptr<Client> Client::over(std::shared_ptr<zenoh::Session> session) {
  auto client = std::unique_ptr<Client>(new Client());
  client->session_ = std::move(session);
  return client;
}

std::vector<ClientReply> Client::query(const std::string& selector, const zenoh::GetOptions& options) {
  struct State {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::vector<ClientReply> replies;
  };
  auto state = std::make_shared<State>();
  session_->get(
      selector, options,
      [state](const zenoh::Reply& r) {
        ClientReply copy{r.ok, std::string(r.key), std::string(r.payload), std::string(r.encoding), std::nullopt};
        if (r.attachment) copy.attachment = std::string(*r.attachment);
        std::lock_guard<std::mutex> lock(state->mutex);
        state->replies.push_back(std::move(copy));
      },
      [state] {
        std::lock_guard<std::mutex> lock(state->mutex);
        state->done = true;
        state->done_cv.notify_all();
      });
  std::unique_lock<std::mutex> lock(state->mutex);
  state->done_cv.wait(lock, [&] { return state->done; });
  // In a partitioned cluster a query can also reach nodes cut off from the
  // leader, which answer `unavailable` beside the leader's answer: the
  // answer of the node that acted comes first (docs/PROTOCOL.md).
  auto is_unavailable = [](const ClientReply& r) {
    return !r.ok && r.payload.find("\"code\":\"unavailable\"") != std::string::npos;
  };
  std::stable_partition(state->replies.begin(), state->replies.end(), [](const ClientReply& r) { return r.ok; });
  std::stable_partition(state->replies.begin(), state->replies.end(),
                        [&](const ClientReply& r) { return !is_unavailable(r); });
  return std::move(state->replies);
}

bool Client::publish(const std::string& key, const std::string& payload, const std::optional<std::string>& encoding) {
  std::optional<std::string_view> enc;
  if (encoding) enc = *encoding;
  return session_->put(key, payload, enc, std::nullopt);
}

}  // namespace mailbox
