#include "server/http_endpoint.hpp"

#include <httplib.h>

#include "util/log.hpp"

namespace mailbox {

bool split_host_port(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return false;
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return false;
  char* end = nullptr;
  const std::string p = listen.substr(colon + 1);
  const long v = std::strtol(p.c_str(), &end, 10);
  if (*end != '\0' || v < 0 || v > 65535) return false;
  *host = h;
  *port = static_cast<int>(v);
  return true;
}

HttpEndpoint::HttpEndpoint(HttpProviders providers) : providers_(std::move(providers)) {}

HttpEndpoint::~HttpEndpoint() { stop(); }

Status HttpEndpoint::start(const std::string& listen) {
  std::string host;
  int port = 0;
  if (!split_host_port(listen, &host, &port)) {
    return Status::error(ErrorCode::kInvalidArgument, "bad --metrics-listen " + listen + ": use HOST:PORT");
  }
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(kHttpWorkerThreads); };
  server_->set_read_timeout(kHttpTimeoutS, 0);
  server_->set_write_timeout(kHttpTimeoutS, 0);
  server_->set_keep_alive_max_count(kHttpMaxKeepAliveRequests);
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(providers_.metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->Get("/status.json", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(providers_.status_json(), "application/json");
  });
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(status_page_html(), "text/html; charset=utf-8");
  });
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ <= 0) return Status::error(ErrorCode::kUnavailable, "cannot listen on " + listen);
  } else {
    if (!server_->bind_to_port(host, port)) {
      return Status::error(ErrorCode::kUnavailable, "cannot listen on " + listen + " (in use, or a bad address)");
    }
    port_ = port;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "mbx-http");
    server_->listen_after_bind();
  });
  log_info("metrics and status page on http://%s:%d/", host.c_str(), port_);
  return Status::ok();
}

void HttpEndpoint::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

const std::string& status_page_html() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mailbox status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f0f0f0}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}.muted{color:#777}
.charts{display:flex;gap:1.5em;flex-wrap:wrap}svg{background:#fff;border:1px solid #ddd}
</style></head><body>
<h1>mailbox cluster <span id="cluster"></span></h1>
<div>node <b id="node">?</b> &middot; <span id="state">?</span> &middot; leader <b id="leader">?</b>
 &middot; term <span id="term">?</span> &middot; health <span id="health">?</span>
 &middot; <span class="muted">updated <span id="updated">never</span></span></div>
<h2>Members</h2>
<table id="members"><thead><tr><th>node</th><th>address</th><th>role</th><th>state</th><th>commit</th>
<th>applied</th><th>lag (entries)</th><th>reachable</th></tr></thead><tbody></tbody></table>
<h2>Throughput and latency (last 10 minutes)</h2>
<div class="charts">
<div><div>requests/s</div><svg id="rate" width="420" height="120"></svg></div>
<div><div>put latency p99 (ms, between updates)</div><svg id="latency" width="420" height="120"></svg></div>
</div>
<h2>Mailboxes</h2>
<div id="totals"></div>
<h3>Deepest</h3>
<table id="deepest"><thead><tr><th>mailbox</th><th>messages</th><th>bytes</th><th>leased</th><th>oldest</th></tr>
</thead><tbody></tbody></table>
<h3>Dead letters</h3>
<table id="dead"><thead><tr><th>mailbox</th><th>messages</th><th>bytes</th><th>leased</th><th>oldest</th></tr>
</thead><tbody></tbody></table>
<script>
"use strict";
const POLL_MS = 2000, HISTORY = 300;
const history = [];
let previous = null;
function text(id, v) { document.getElementById(id).textContent = v; }
function cell(row, v, cls) { const td = row.insertCell(); td.textContent = v; if (cls) td.className = cls; return td; }
function fillBoxes(id, boxes) {
  const body = document.querySelector("#" + id + " tbody");
  body.innerHTML = "";
  for (const b of boxes) {
    const r = body.insertRow();
    r.dataset.mailbox = b.name;
    cell(r, b.name); cell(r, b.messages); cell(r, b.bytes); cell(r, b.leased);
    cell(r, (b.oldest_age_ms / 1000).toFixed(1) + " s");
  }
  if (!boxes.length) cell(body.insertRow(), "none", "muted").colSpan = 5;
}
function draw(id, values) {
  const svg = document.getElementById(id), w = svg.width.baseVal.value, h = svg.height.baseVal.value;
  const max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => (i * w / Math.max(1, HISTORY - 1)).toFixed(1) + "," +
                                   (h - 14 - v / max * (h - 24)).toFixed(1)).join(" ");
  svg.innerHTML = '<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="' + pts + '"/>' +
    '<text x="4" y="12" font-size="11" fill="#555">max ' + max.toPrecision(3) + '</text>';
}
function total(requests) { return requests.reduce((a, r) => a + r.count, 0); }
// The p99 of the samples between two polls: the bucket bound holding it.
function windowP99(now, before, bounds) {
  if (!now) return 0;
  const delta = now.buckets.map((c, i) => c - (before ? before.buckets[i] : 0));
  const n = delta.reduce((a, c) => a + c, 0);
  if (n <= 0) return 0;
  const rank = Math.floor(0.99 * (n - 1)) + 1;
  let seen = 0;
  for (let i = 0; i < delta.length; i++) {
    seen += delta[i];
    if (seen >= rank) return bounds[Math.min(i, bounds.length - 1)];
  }
  return bounds[bounds.length - 1];
}
function update(s) {
  text("cluster", s.cluster); text("node", s.node); text("state", s.state);
  text("leader", s.leader || "none"); text("term", s.term);
  const members = document.querySelector("#members tbody");
  members.innerHTML = "";
  let healthy = 0;
  for (const m of s.members) {
    const peer = (s.cluster_nodes || []).find(n => n.id === m.id);
    const r = members.insertRow();
    r.dataset.node = m.id;
    cell(r, m.id + (m.leader ? " (leader)" : "")); cell(r, m.address); cell(r, m.role);
    cell(r, peer ? peer.state : "?"); cell(r, peer ? peer.commit_index : "?");
    cell(r, peer ? peer.applied_index : "?"); cell(r, m.lag === null ? "?" : m.lag);
    cell(r, peer ? "yes" : "no", peer ? "ok" : "bad");
    if (peer) healthy++;
  }
  const quorum = Math.floor(s.members.filter(m => m.role === "voter").length / 2) + 1;
  const h = document.getElementById("health");
  h.textContent = s.leader && healthy >= quorum ? (healthy === s.members.length ? "healthy" : "degraded")
                                                : "no quorum";
  h.className = h.textContent === "healthy" ? "ok" : "bad";
  const mb = s.mailboxes;
  text("totals", mb.count + " mailboxes, " + mb.messages + " messages, " + mb.bytes + " bytes, " +
       (mb.leased === null ? "?" : mb.leased) + " leased, " +
       (mb.delayed === null ? "?" : mb.delayed) + " delayed, " + mb.dead_letter_messages + " dead letters");
  fillBoxes("deepest", mb.deepest); fillBoxes("dead", mb.dead_letters);
  const now = Date.now(), count = total(s.requests);
  const put = s.latency.find(l => l.op === "put");
  let rate = 0, p99 = 0;
  if (previous) {
    rate = Math.max(0, count - previous.count) / ((now - previous.at) / 1000);
    p99 = windowP99(put, previous.put, s.latency_bounds_s) * 1000;
  }
  previous = { at: now, count: count, put: put };
  history.push({ rate: rate, p99: p99 });
  while (history.length > HISTORY) history.shift();
  draw("rate", history.map(x => x.rate)); draw("latency", history.map(x => x.p99));
  text("updated", new Date().toISOString());
  document.body.dataset.loaded = "yes";
}
async function poll() {
  try {
    const r = await fetch("status.json", { cache: "no-store" });
    if (r.ok) update(await r.json());
  } catch (e) { text("updated", "failed: " + e); }
  setTimeout(poll, POLL_MS);
}
poll();
</script></body></html>
)HTML";
  return page;
}

}  // namespace mailbox
