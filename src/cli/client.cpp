#include "cli/client.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include <nlohmann/json.hpp>

#include "cli/zenoh_config.hpp"

namespace mailbox {

std::string token_attachment(const std::string& token) {
  return token.empty() ? std::string() : nlohmann::json({{"token", token}}).dump();
}

std::unique_ptr<Client> Client::connect(const std::vector<std::string>& endpoints, std::string* error) {
  return connect(endpoints, ClientAccess{}, error);
}

std::unique_ptr<Client> Client::connect(const std::vector<std::string>& endpoints, const ClientAccess& access,
                                        std::string* error) {
  auto session = zenoh::Session::open(client_config(endpoints, access.security), error);
  if (!session) return nullptr;
  return over(std::move(session), access.token);
}

std::unique_ptr<Client> Client::over(std::shared_ptr<zenoh::Session> session, const std::string& token) {
  auto client = std::unique_ptr<Client>(new Client());
  client->session_ = std::move(session);
  client->attachment_ = token_attachment(token);
  return client;
}

std::vector<ClientReply> Client::query(const std::string& selector, const zenoh::GetOptions& given) {
  zenoh::GetOptions options = given;
  if (!options.attachment && !attachment_.empty()) options.attachment = attachment_;
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

bool Client::publish(const std::string& key, const std::string& payload, const std::optional<std::string>& encoding,
                     const std::vector<std::pair<std::string, std::string>>& options) {
  std::optional<std::string_view> enc;
  if (encoding) enc = *encoding;
  std::string with_options;
  std::optional<std::string_view> attachment;
  if (!attachment_.empty()) attachment = attachment_;
  if (!options.empty()) {
    nlohmann::json object = attachment_.empty() ? nlohmann::json::object() : nlohmann::json::parse(attachment_);
    for (const auto& [name, value] : options) object[name] = value;
    with_options = object.dump();
    attachment = with_options;
  }
  return session_->put(key, payload, enc, attachment);
}

}  // namespace mailbox
