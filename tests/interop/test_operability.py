"""Operability (issue #14): the data directory, `mailbox cluster status`,
metrics, the status page, the config file, structured logs, backup and
restore. Black-box: real mailboxd processes, the real `mailbox` CLI, HTTP."""
import html.parser
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from conftest import MAILBOX_CLI, MAILBOXD, PREFIX, Client, Cluster, Node, free_port


def run_cli(node, *args, timeout=30):
    return subprocess.run([str(MAILBOX_CLI), "--connect", node.endpoint, *args], capture_output=True,
                          timeout=timeout)


# ---------------------------------------------------------------- data directory

def test_a_data_directory_with_foreign_files_bootstraps_and_warns(workdir):
    data = workdir / "n1"
    (data / "lost+found").mkdir(parents=True)
    (data / ".keep").write_bytes(b"")
    node = Node(data).start()
    client = Client(node.endpoint)
    client.wait_ready()
    client.put_ack("box", b"hello")
    kind, body = client.consume("box")
    assert kind == "ok" and body["payload"] == b"hello"
    client.close()
    node.stop()
    log = node.log_path.read_text()
    assert "lost+found" in log and ".keep" in log, log
    assert "warn" in log
    # Both are left alone.
    assert (data / "lost+found").is_dir() and (data / ".keep").exists()


def start_expecting_refusal(data_dir, *args):
    proc = subprocess.run([str(MAILBOXD), "--data-dir", str(data_dir), "--listen", "tcp/127.0.0.1:0",
                           "--raft-address", "127.0.0.1:0", *args], capture_output=True, timeout=30)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def test_a_data_directory_of_another_node_or_cluster_is_refused(workdir):
    data = workdir / "n1"
    node = Node(data, ["--node-id", "1", "--cluster-name", "alpha"]).start()
    Client(node.endpoint).wait_ready()
    assert node.stop() == 0
    code, out = start_expecting_refusal(data, "--node-id", "2", "--cluster-name", "alpha")
    assert code != 0
    assert "belongs to node 1" in out and "not to node 2" in out, out
    code, out = start_expecting_refusal(data, "--node-id", "1", "--cluster-name", "beta")
    assert code != 0
    assert "belongs to cluster 'alpha'" in out, out
    # Its own identity still starts, with the data it had.
    again = Node(data, ["--node-id", "1", "--cluster-name", "alpha"]).start()
    Client(again.endpoint).wait_ready()
    assert again.stop() == 0


def test_cluster_status_ends_with_a_newline(node):
    Client(node.endpoint).wait_ready()
    for args in (["cluster", "status"], ["--json", "cluster", "status"]):
        out = run_cli(node, *args)
        assert out.returncode == 0, out
        assert out.stdout.endswith(b"\n"), out.stdout


# ---------------------------------------------------------------- metrics

def http_get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def metric(text, name, labels=""):
    """The value of `name{labels}` in a Prometheus exposition, or None."""
    want = name + ("{" + labels + "}" if labels else "") + " "
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return None


def test_metrics_over_http_and_zenoh_agree(workdir):
    port = free_port()
    node = Node(workdir / "n1", ["--metrics-listen", f"127.0.0.1:{port}"]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    for i in range(3):
        client.put_ack("metered", f"m{i}".encode())
    kind, _ = client.consume("metered")
    assert kind == "ok"
    kind, body = client.consume("never-filled")
    assert kind == "err" and body["code"] == "empty"
    client.put(f"{PREFIX}/emptypub", b"")  # dropped: a publication needs a payload
    deadline = time.time() + 10
    while True:
        status, ctype, text = http_get(port, "/metrics")
        if (metric(text, "mailbox_messages") == 2 and metric(text, "mailbox_mailboxes") == 1 and
                metric(text, "mailbox_publications_dropped_total", 'reason="invalid"') == 1) or \
                time.time() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and ctype.startswith("text/plain")
    assert metric(text, "mailbox_requests_total", 'op="put",code="ok"') == 3, text
    assert metric(text, "mailbox_requests_total", 'op="consume",code="ok"') == 1
    assert metric(text, "mailbox_requests_total", 'op="consume",code="empty"') == 1
    assert metric(text, "mailbox_request_duration_seconds_count", 'op="put"') == 3
    assert metric(text, "mailbox_raft_role") == 3 and metric(text, "mailbox_raft_is_leader") == 1
    assert metric(text, "mailbox_raft_term") >= 1
    assert metric(text, "mailbox_raft_commit_index") >= 4
    assert metric(text, "mailbox_messages") == 2
    assert metric(text, "mailbox_mailboxes") == 1
    assert metric(text, "mailbox_log_disk_bytes") > 0
    assert metric(text, "mailbox_log_fsync_seconds_count") >= 1
    assert metric(text, "mailbox_commit_seconds_count") >= 4
    assert metric(text, "mailbox_apply_seconds_count") >= 4
    assert metric(text, "mailbox_loop_iteration_seconds_count") > 0
    assert metric(text, "mailbox_publications_dropped_total", 'reason="invalid"') == 1
    # The same numbers under the Zenoh admin key.
    kind, body = client.one(f"{PREFIX}/@cluster/node/1/metrics")
    assert kind == "ok", body
    ztext = body["payload"].decode()
    assert metric(ztext, "mailbox_requests_total", 'op="put",code="ok"') == 3
    assert metric(ztext, "mailbox_messages") == 2
    assert metric(ztext, "mailbox_raft_term") == metric(text, "mailbox_raft_term")
    # Zenoh sessions: this client, then a second one, then the first again.
    assert metric(text, "mailbox_zenoh_sessions", 'kind="client"') == 1, text
    assert metric(text, "mailbox_zenoh_sessions", 'kind="router"') == 0
    second = Client(node.endpoint)

    def clients_become(n):
        deadline = time.time() + 10
        while time.time() < deadline:
            value = metric(http_get(port, "/metrics")[2], "mailbox_zenoh_sessions", 'kind="client"')
            if value == n:
                return value
            time.sleep(0.1)
        return value

    assert clients_become(2) == 2
    second.close()
    assert clients_become(1) == 1
    client.close()
    assert node.stop() == 0


def test_metrics_are_off_by_default(node):
    Client(node.endpoint).wait_ready()
    log = node.log_path.read_text()
    assert "metrics and status page on" not in log


def test_follower_lag_on_the_leader(workdir):
    ports = {i: free_port() for i in (1, 2, 3)}
    cluster = Cluster(workdir, 3, node_args=lambda i: ["--metrics-listen", f"127.0.0.1:{ports[i]}"]).start_all()
    client = Client(cluster.nodes[1].endpoint)
    client.wait_ready()
    client.put_ack("lagging", b"x")
    leader = None
    deadline = time.time() + 15
    while leader is None and time.time() < deadline:
        for i, port in ports.items():
            _, _, text = http_get(port, "/metrics")
            if metric(text, "mailbox_raft_is_leader") == 1:
                leader, leader_text = i, text
        time.sleep(0.2)
    assert leader is not None
    followers = [i for i in ports if i != leader]
    for f in followers:
        lag = metric(leader_text, "mailbox_raft_follower_lag_entries", f'follower="{f}"')
        assert lag is not None and lag >= 0, leader_text
    _, _, text = http_get(ports[followers[0]], "/metrics")
    assert metric(text, "mailbox_raft_role") == 1
    assert metric(text, "mailbox_raft_leader_id") == leader
    client.close()


# ---------------------------------------------------------------- status page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url, budget_ms=8000):
    """The page's DOM after its scripts ran for `budget_ms` of virtual time,
    in Debian's headless Chromium (installed by scripts/install-deps.sh)."""
    assert CHROMIUM, "chromium is missing: run scripts/install-deps.sh"
    profile = tempfile.mkdtemp(prefix="mailbox-chromium-")
    try:
        out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                              "--dump-dom", url], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode()


class Dom(html.parser.HTMLParser):
    """Cells of tables by id and text of elements by id, from a dumped DOM."""

    def __init__(self, text):
        super().__init__()
        self.by_id, self.rows, self.body_attrs, self.tags = {}, {}, {}, {}
        self._stack, self._table, self._row = [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "body":
            self.body_attrs = attrs
        if tag == "table":
            self._table = attrs.get("id")
            self.rows.setdefault(self._table, [])
        if tag == "tr" and self._table:
            self._row = {"attrs": attrs, "cells": []}
        if tag == "td" and self._row is not None:
            self._row["cells"].append("")
        self._stack.append((tag, attrs.get("id")))

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self.rows[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, element_id in self._stack:
            if element_id:
                self.by_id[element_id] = self.by_id.get(element_id, "") + data
        if self._row is not None and self._row["cells"] and self._stack and self._stack[-1][0] == "td":
            self._row["cells"][-1] += data


def test_status_page_shows_the_live_cluster_in_chromium(workdir):
    ports = {i: free_port() for i in (1, 2, 3)}
    cluster = Cluster(workdir, 3, node_args=lambda i: ["--metrics-listen", f"127.0.0.1:{ports[i]}"]).start_all()
    client = Client(cluster.nodes[2].endpoint)
    client.wait_ready()
    for i in range(5):
        client.put_ack("deep", f"d{i}".encode())
    for i in range(2):
        client.put_ack("shallow", f"s{i}".encode())
    # The service's own answers.
    kind, body = client.one(f"{PREFIX}/deep/stats")
    assert kind == "ok"
    deep_messages = json.loads(body["payload"])["messages"]
    assert deep_messages == 5
    statuses = [json.loads(b["payload"]) for k, b in client.query(f"{PREFIX}/@cluster/node/*/status") if k == "ok"]
    leaders = {s["leader"] for s in statuses}
    assert len(leaders) == 1 and 0 not in leaders, statuses
    leader = leaders.pop()
    # A follower serves the page; its overview of the mailboxes is computed
    # while someone asks (the page's own polls do).
    page_node = next(i for i in ports if i != leader)
    deadline = time.time() + 15
    while time.time() < deadline:
        _, _, text = http_get(ports[page_node], "/status.json")
        data = json.loads(text)
        if data["mailboxes"]["deepest"] and len(data["cluster_nodes"]) == 3:
            break
        time.sleep(0.3)
    page = http_get(ports[page_node], "/")[2]
    assert "http://" not in page and "https://" not in page, "the page must not load anything from elsewhere"
    # The page shows what its polls bring: on a loaded machine a member's
    # status may miss the page's 1 s wait once, so a load is tried again.
    for _ in range(3):
        dom = Dom(dump_dom(f"http://127.0.0.1:{ports[page_node]}/"))
        if dom.by_id.get("health", "").strip() == "healthy" and dom.rows.get("deepest"):
            break
    assert dom.body_attrs.get("data-loaded") == "yes", "the page did not load live data"
    assert dom.by_id["leader"].strip() == str(leader)
    assert dom.by_id["node"].strip() == str(page_node)
    assert dom.by_id["health"].strip() == "healthy"
    members = {int(r["attrs"]["data-node"]): r["cells"] for r in dom.rows["members"]}
    assert sorted(members) == [1, 2, 3]
    assert "(leader)" in members[leader][0]
    assert all(cells[7] == "yes" for cells in members.values()), members
    deepest = [(r["attrs"].get("data-mailbox"), r["cells"]) for r in dom.rows["deepest"]]
    assert deepest[0][0] == "deep" and int(deepest[0][1][1]) == deep_messages, deepest
    assert deepest[1][0] == "shallow" and int(deepest[1][1][1]) == 2, deepest
    assert dom.tags.get("polyline") == 2  # both charts drawn, in inline SVG
    client.close()


# ---------------------------------------------------------------- config file

def write_config(path, **keys):
    lines = []
    for k, v in keys.items():
        lines.append(f"{k.replace('_', '-')} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_config_accepts_a_good_file_and_names_a_bad_key(workdir):
    good = write_config(workdir / "good.toml", node_id=3, data_dir=str(workdir / "d"), listen=["tcp/127.0.0.1:7999"],
                        peer=["3=127.0.0.1:7450"], metrics_listen="127.0.0.1:9999", log_format="json")
    out = subprocess.run([str(MAILBOXD), "--config", str(good), "--check-config"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert b"configuration OK" in out.stderr
    assert b"node-id=3" in out.stdout.replace(b" ", b""), out.stdout
    # What it prints is a configuration file that gives the same settings.
    effective = workdir / "effective.toml"
    effective.write_bytes(out.stdout)
    again = subprocess.run([str(MAILBOXD), "--config", str(effective), "--check-config"], capture_output=True,
                           timeout=30)
    assert again.returncode == 0 and again.stdout == out.stdout, again
    # A flag overrides the file.
    out = subprocess.run([str(MAILBOXD), "--config", str(good), "--node-id", "4", "--peer", "4=127.0.0.1:7450",
                          "--check-config"], capture_output=True, timeout=30)
    assert out.returncode == 0 and b"node-id=4" in out.stdout.replace(b" ", b""), out
    bad = workdir / "bad.toml"
    bad.write_text('data-dir = "/x"\nno-such-flag = 1\n')
    out = subprocess.run([str(MAILBOXD), "--config", str(bad), "--check-config"], capture_output=True, timeout=30)
    assert out.returncode != 0 and b"no-such-flag" in out.stderr, out
    broken = workdir / "broken.toml"
    broken.write_text('data-dir = \n')
    out = subprocess.run([str(MAILBOXD), "--config", str(broken), "--check-config"], capture_output=True, timeout=30)
    assert out.returncode != 0 and b"not valid TOML" in out.stderr, out
    out = subprocess.run([str(MAILBOXD), "--config", str(good), "--log-format", "xml", "--check-config"],
                         capture_output=True, timeout=30)
    assert out.returncode != 0 and b"--log-format" in out.stderr


def test_a_node_runs_from_its_config_file_with_json_logs(workdir):
    port = free_port()
    config = write_config(workdir / "mailboxd.toml", metrics_listen=f"127.0.0.1:{port}", log_format="json",
                          log_level="debug", max_payload_bytes=64, cluster_name="configured")
    node = Node(workdir / "n1", ["--config", str(config)]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    client.put_ack("fromconfig", b"x")
    secret = b"SECRET-PAYLOAD-" * 10  # over max-payload-bytes: a dropped publication
    client.put(f"{PREFIX}/jsonbox", secret)
    deadline = time.time() + 10
    while time.time() < deadline:
        _, _, text = http_get(port, "/metrics")
        if metric(text, "mailbox_publications_dropped_total", 'reason="invalid"') == 1:
            break
        time.sleep(0.2)
    assert metric(text, "mailbox_node_info", 'node="1",cluster="configured"') == 1
    client.close()
    assert node.stop() == 0
    records = []
    for line in node.log_path.read_text().splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert {"ts", "level", "component", "msg"} <= set(record), record
        records.append(record)
    assert any(r["component"] == "mailboxd" for r in records)
    assert any(r["component"] == "replication" for r in records)
    dropped = [r for r in records if r.get("op") == "publication" and r.get("mailbox") == "jsonbox"]
    assert dropped and dropped[0]["level"] == "debug", records
    assert "SECRET" not in node.log_path.read_text()


# ---------------------------------------------------------------- backup and restore

def test_backup_and_restore_of_a_data_directory(workdir):
    """docs/OPERATIONS.md, "Backup and restore": stop the node, copy its data
    directory, restore the copy into a new directory, start a node on it."""
    node = Node(workdir / "live", ["--cluster-name", "backed"]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    for i in range(20):
        client.put_ack("kept", f"message {i}".encode())
    client.close()
    assert node.stop() == 0
    backup = workdir / "backup"
    subprocess.run(["cp", "-a", str(workdir / "live"), str(backup)], check=True)
    # The live directory goes on and changes; the backup does not.
    node = Node(workdir / "live", ["--cluster-name", "backed"]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    client.consume("kept")
    client.close()
    assert node.stop() == 0
    restored_dir = workdir / "restored"
    subprocess.run(["cp", "-a", str(backup), str(restored_dir)], check=True)
    restored = Node(restored_dir, ["--cluster-name", "backed"]).start()
    client = Client(restored.endpoint)
    client.wait_ready()
    kind, body = client.one(f"{PREFIX}/kept/stats")
    assert kind == "ok" and json.loads(body["payload"])["messages"] == 20
    got = [client.consume("kept")[1]["payload"] for _ in range(20)]
    assert got == [f"message {i}".encode() for i in range(20)]
    client.close()
    assert restored.stop() == 0


def test_a_cluster_members_backup_restores_as_a_new_cluster(workdir):
    """A copy of one member's directory becomes a one-node cluster with
    --recover (the cluster it came from must not see it again)."""
    cluster = Cluster(workdir, 3).start_all()
    client = Client(cluster.nodes[1].endpoint)
    client.wait_ready()
    for i in range(5):
        client.put_ack("replicated", f"r{i}".encode())
    deadline = time.time() + 15
    while time.time() < deadline:  # every member has applied the puts
        statuses = [json.loads(b["payload"]) for k, b in client.query(f"{PREFIX}/@cluster/node/*/status")
                    if k == "ok"]
        if len(statuses) == 3 and len({s["applied_index"] for s in statuses}) == 1:
            break
        time.sleep(0.2)
    client.close()
    for n in cluster.nodes.values():
        assert n.stop() == 0
    copy = workdir / "copy-of-n2"
    subprocess.run(["cp", "-a", str(workdir / "n2"), str(copy)], check=True)
    single = Node(copy)
    single.extra_args = ["--node-id", "2", "--recover", "--peer", f"2=127.0.0.1:{single.raft_port}"]
    single.start()
    client = Client(single.endpoint)
    client.wait_ready()
    kind, body = client.one(f"{PREFIX}/replicated/stats")
    assert kind == "ok" and json.loads(body["payload"])["messages"] == 5, body
    client.close()
    assert single.stop() == 0


def test_dead_letters_in_metrics_and_on_the_status_page(workdir):
    port = free_port()
    node = Node(workdir / "n1", ["--metrics-listen", f"127.0.0.1:{port}", "--max-deliveries", "1"]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    client.put_ack("orders", b"poison")
    client.put_ack("orders", b"fine")
    kind, body = client.consume("orders", "lease=5s")
    assert kind == "ok" and body["payload"] == b"poison"
    kind, _ = client.one(f"{PREFIX}/orders/nack?id={body['attachment']['id']}")
    assert kind == "ok"
    deadline = time.time() + 10
    while time.time() < deadline:
        status = json.loads(http_get(port, "/status.json")[2])
        _, _, text = http_get(port, "/metrics")
        if status["mailboxes"]["dead_letters"] and metric(text, "mailbox_dead_letter_messages") == 1:
            break
        time.sleep(0.2)
    assert status["mailboxes"]["dead_letters"] == [
        {"name": "orders.dlq", "messages": 1, "bytes": 6, "leased": 0,
         "oldest_age_ms": status["mailboxes"]["dead_letters"][0]["oldest_age_ms"]}], status
    assert metric(text, "mailbox_dead_letter_messages") == 1
    assert metric(text, "mailbox_requests_total", 'op="nack",code="ok"') == 1
    assert {b["name"] for b in status["mailboxes"]["deepest"]} == {"orders", "orders.dlq"}
    client.close()
    assert node.stop() == 0


def test_leased_and_delayed_messages_are_told_apart(workdir):
    """A delayed message is not leased and a leased one is not delayed, in
    the metrics and on the status page."""
    port = free_port()
    node = Node(workdir / "n1", ["--metrics-listen", f"127.0.0.1:{port}"]).start()
    client = Client(node.endpoint)
    client.wait_ready()
    kind, _ = client.one(f"{PREFIX}/later/put?delay=60s", payload=b"in a minute")
    assert kind == "ok"
    client.put_ack("work", b"job")
    client.put_ack("work", b"waiting")
    kind, _ = client.consume("work", "lease=60s")
    assert kind == "ok"
    deadline = time.time() + 10
    while time.time() < deadline:
        text = http_get(port, "/metrics")[2]
        if metric(text, "mailbox_messages") == 3 and metric(text, "mailbox_messages_delayed") == 1:
            break
        time.sleep(0.2)
    assert metric(text, "mailbox_messages_delayed") == 1, text
    assert metric(text, "mailbox_messages_leased") == 1, text
    totals = json.loads(http_get(port, "/status.json")[2])["mailboxes"]
    assert (totals["messages"], totals["leased"], totals["delayed"]) == (3, 1, 1), totals
    client.close()
    assert node.stop() == 0


def test_status_json_with_a_member_down(workdir):
    ports = {i: free_port() for i in (1, 2, 3)}
    cluster = Cluster(workdir, 3, node_args=lambda i: ["--metrics-listen", f"127.0.0.1:{ports[i]}"]).start_all()
    client = Client(cluster.nodes[1].endpoint)
    client.wait_ready()
    client.close()
    assert cluster.nodes[3].stop() == 0
    deadline = time.time() + 15
    while time.time() < deadline:
        started = time.time()
        status = json.loads(http_get(ports[1], "/status.json")[2])
        took = time.time() - started
        if status["leader"] in (1, 2) and sorted(n["id"] for n in status["cluster_nodes"]) == [1, 2]:
            break
        time.sleep(0.3)
    assert sorted(n["id"] for n in status["cluster_nodes"]) == [1, 2], status
    assert len(status["members"]) == 3  # still a member, not reachable
    assert took < 5, took  # the page waits a bounded time for a member


def test_a_metrics_port_in_use_or_malformed_is_refused(workdir):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        node = Node(workdir / "n1", ["--metrics-listen", f"127.0.0.1:{port}"])
        node.start(wait_listening=False)
        assert node.proc.wait(timeout=30) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in node.log_path.read_text()
    out = subprocess.run([str(MAILBOXD), "--metrics-listen", "nocolon", "--check-config"], capture_output=True,
                         timeout=30)
    assert out.returncode == 2 and b"bad --metrics-listen" in out.stderr, out
