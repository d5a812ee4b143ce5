"""Black-box tests of the single-node service through eclipse-zenoh."""
import json
import subprocess

from conftest import MAILBOX_CLI, PREFIX, Client, Node


def test_seed_walkthrough(client):
    # put to forge/mailbox/user123 (fire-and-forget publication), get it back with its id, then empty.
    client.session.put(f"{PREFIX}/user123", b'{"message": "Your AI generation is ready"}')
    kind, body = None, None
    for _ in range(50):  # a publication is not acknowledged: poll until stored
        kind, body = client.consume("user123")
        if kind == "ok":
            break
    assert kind == "ok", body
    assert body["payload"] == b'{"message": "Your AI generation is ready"}'
    att = body["attachment"]
    assert att["mailbox"] == "user123"
    assert int(att["id"]) > 0
    assert att["deliveries"] == 1
    assert att["enqueued_at"] > 1_600_000_000_000
    kind, body = client.consume("user123")
    assert kind == "err" and body["code"] == "empty"
    assert body["message"]


def test_binary_payload_round_trips_with_its_encoding(client):
    payload = bytes(range(256)) + b"\x00\x00tail\x00"
    import zenoh
    replies = client.session.get(f"{PREFIX}/bin/put", payload=payload, encoding=zenoh.Encoding.APPLICATION_OCTET_STREAM,
                                 timeout=10)
    replies = list(replies)
    assert len(replies) == 1 and replies[0].ok is not None
    kind, body = client.one(f"{PREFIX}/bin/consume")
    assert kind == "ok"
    assert body["payload"] == payload
    assert body["encoding"] == "application/octet-stream"


def test_thousand_acknowledged_puts_come_back_fifo(client):
    ids = [int(client.put_ack("fifo", f"m{i}".encode())) for i in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    got = []
    for _ in range(1000):
        kind, body = client.consume("fifo")
        assert kind == "ok", body
        got.append((int(body["attachment"]["id"]), body["payload"]))
    assert [g[0] for g in got] == ids
    assert [g[1] for g in got] == [f"m{i}".encode() for i in range(1000)]
    kind, body = client.consume("fifo")
    assert body["code"] == "empty"


def test_peek_does_not_remove_and_stats_count(client):
    client.put_ack("pk", b"one")
    client.put_ack("pk", b"two")
    for _ in range(2):
        kind, body = client.one(f"{PREFIX}/pk/peek")
        assert kind == "ok" and body["payload"] == b"one"
        assert body["attachment"]["deliveries"] == 0
    kind, body = client.one(f"{PREFIX}/pk/stats")
    assert kind == "ok"
    stats = json.loads(body["payload"])
    assert stats["messages"] == 2 and stats["bytes"] == 6 and stats["leased"] == 0
    assert stats["oldest_age_ms"] >= 0


def test_acknowledged_messages_survive_kill_9(workdir):
    node = Node(workdir / "crash").start()
    c = Client(node.endpoint)
    c.wait_ready()
    ids = [c.put_ack("durable", f"d{i}".encode()) for i in range(50)]
    kind, body = c.consume("durable")
    assert body["payload"] == b"d0"
    c.close()
    node.kill9()
    node.start()
    c = Client(node.endpoint)
    c.wait_ready()
    got = []
    while True:
        kind, body = c.consume("durable")
        if kind == "err":
            assert body["code"] == "empty"
            break
        got.append(body["attachment"]["id"])
    assert got == ids[1:], "every acknowledged message after the consumed one, in order, exactly once"
    c.close()
    node.stop()


def test_clean_shutdown_and_restart_keeps_data(workdir):
    node = Node(workdir / "clean").start()
    c = Client(node.endpoint)
    c.wait_ready()
    c.put_ack("keep", b"kept")
    c.close()
    assert node.stop() == 0, "SIGTERM shuts down cleanly with exit code 0"
    node.start()
    c = Client(node.endpoint)
    c.wait_ready()
    kind, body = c.consume("keep")
    assert kind == "ok" and body["payload"] == b"kept"
    c.close()
    node.stop()


def stats_messages(client, box):
    kind, body = client.one(f"{PREFIX}/{box}/stats")
    assert kind == "ok", body
    return json.loads(body["payload"])["messages"]


def test_bad_names_and_operations_are_refused_and_change_nothing(client):
    client.put_ack("victim", b"stay")
    bad = [
        f"{PREFIX}/*", f"{PREFIX}/**", f"{PREFIX}/vic$*", f"{PREFIX}/victim/*",
        f"{PREFIX}/.hidden", f"{PREFIX}/a b", f"{PREFIX}/victim/frobnicate",
        f"{PREFIX}/victim/consume/extra", f"{PREFIX}/victim?n=0", f"{PREFIX}/victim?n=1001",
        f"{PREFIX}/victim?colour=red", f"{PREFIX}/victim?n=1;n=2", f"{PREFIX}/victim/peek?n=abc",
    ]
    for sel in bad:
        replies = client.query(sel)
        assert replies, f"{sel}: the service must answer"
        assert all(k == "err" for k, _ in replies), (sel, replies)
        assert replies[0][1]["code"] == "invalid_argument", (sel, replies)
        assert replies[0][1]["message"]
    # A chunk starting with '@' is verbatim in Zenoh: no wildcard queryable
    # matches it, so such a query never reaches the service (empty stream).
    assert client.query(f"{PREFIX}/@admin") == []
    assert stats_messages(client, "victim") == 1
    kind, body = client.consume("victim")
    assert body["payload"] == b"stay"


def test_put_without_payload_is_refused(client):
    kind, body = client.one(f"{PREFIX}/nopayload/put")
    assert kind == "err" and body["code"] == "invalid_argument"
    assert stats_messages(client, "nopayload") == 0


def test_too_large_payload_is_refused(workdir):
    node = Node(workdir / "small", ["--max-payload-bytes", "1024"]).start()
    c = Client(node.endpoint)
    c.wait_ready()
    kind, body = c.one(f"{PREFIX}/big/put", payload=b"x" * 1025)
    assert kind == "err" and body["code"] == "too_large"
    assert c.put_ack("big", b"x" * 1024)
    assert stats_messages(c, "big") == 1
    c.close()
    node.stop()


def test_batch_of_fifty_with_default_settings(client):
    ids = [client.put_ack("batch", f"b{i}".encode()) for i in range(60)]
    kind, body = client.one(f"{PREFIX}/batch?n=50")
    assert kind == "ok"
    att = body["attachment"]
    assert att["count"] == 50 and len(att["messages"]) == 50
    assert [m["id"] for m in att["messages"]] == ids[:50]
    # The payload is the concatenation; sizes slice it.
    offset, payloads = 0, []
    for m in att["messages"]:
        payloads.append(body["payload"][offset:offset + m["size"]])
        offset += m["size"]
    assert offset == len(body["payload"])
    assert payloads == [f"b{i}".encode() for i in range(50)]
    assert stats_messages(client, "batch") == 10


def test_prefix_flag(workdir):
    node = Node(workdir / "pfx", ["--prefix", "acme/inbox"]).start()
    c = Client(node.endpoint)
    c.wait_ready(prefix="acme/inbox")
    kind, body = c.one("acme/inbox/x/put", payload=b"hi")
    assert kind == "ok", body
    kind, body = c.one("acme/inbox/x")
    assert kind == "ok" and body["payload"] == b"hi"
    assert c.query(f"{PREFIX}/x") == [], "nothing serves the default prefix"
    c.close()
    node.stop()


def run_cli(node, *args, input=None):
    return subprocess.run([str(MAILBOX_CLI), "--connect", node.endpoint, *args], input=input,
                          capture_output=True, timeout=30)


def test_cli_put_get_peek_stats_and_exit_codes(node, client):
    r = run_cli(node, "put", "cli", "from-arg")
    assert r.returncode == 0, r.stderr
    first_id = r.stdout.decode().strip()
    r = run_cli(node, "put", "cli", input=b"from\x00stdin")
    assert r.returncode == 0, r.stderr
    r = run_cli(node, "--json", "peek", "cli")
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == first_id
    r = run_cli(node, "stats", "cli")
    assert json.loads(r.stdout)["messages"] == 2
    r = run_cli(node, "get", "cli")
    assert r.returncode == 0 and r.stdout == b"from-arg"
    r = run_cli(node, "consume", "cli")
    assert r.returncode == 0 and r.stdout == b"from\x00stdin"
    r = run_cli(node, "get", "cli")
    assert r.returncode == 3, "empty has its own exit code"
    r = run_cli(node, "get", "bad*name")
    assert r.returncode == 2 and b"mailbox name" in r.stderr, "refused before sending"
    r = run_cli(node, "get", "cli?n=0")
    assert r.returncode == 2
    r = subprocess.run([str(MAILBOX_CLI), "--connect", "tcp/127.0.0.1:1", "--timeout-ms", "500", "get", "x"],
                       capture_output=True, timeout=30)
    assert r.returncode == 4


def test_cli_every_parameter_and_watch(node, client):
    r = run_cli(node, "put", "--rid", "r1", "--ttl", "1h", "--encoding", "text/plain", "c2", "one")
    r2 = run_cli(node, "put", "--rid", "r1", "c2", "one")
    assert r.returncode == 0 and r.stdout == r2.stdout, "same rid, same id"
    run_cli(node, "put", "c2", "two")
    r = run_cli(node, "--json", "peek", "-n", "5", "c2")
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert [l["payload"] for l in lines] == ["one", "two"] and lines[0]["encoding"] == "text/plain"
    r = run_cli(node, "--json", "get", "--lease", "30s", "--rid", "g1", "c2")
    leased = json.loads(r.stdout)
    assert leased["payload"] == "one" and "lease_expires_at" in leased
    assert run_cli(node, "nack", "c2", leased["id"]).returncode == 0
    r = run_cli(node, "--json", "get", "--lease", "30s", "c2")
    again = json.loads(r.stdout)
    assert again["id"] == leased["id"] and again["deliveries"] == 2
    assert run_cli(node, "ack", "c2", again["id"]).returncode == 0
    r = run_cli(node, "ack", "c2", again["id"])
    assert r.returncode == 1 and b"not_found" in r.stderr
    r = run_cli(node, "get", "--wait", "300ms", "c2-empty")
    assert r.returncode == 3
    r = run_cli(node, "get", "--wait", "soon", "c2")
    assert r.returncode == 2
    # watch: leases and auto-acks each message as it arrives.
    proc = subprocess.Popen([str(MAILBOX_CLI), "--connect", node.endpoint, "--json", "watch", "--lease", "10s",
                             "--auto-ack", "--wait", "2s", "--limit", "2", "w"], stdout=subprocess.PIPE)
    import time
    time.sleep(0.5)
    client.put_ack("w", b"w1")
    client.put_ack("w", b"w2")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [json.loads(l)["payload"] for l in out.decode().splitlines()] == ["w1", "w2"]
    assert stats_messages(client, "w") == 0, "auto-acked"
    assert stats_messages(client, "c2") == 1


def test_cli_bench_reports_throughput_and_latency(node, client):
    r = run_cli(node, "--json", "bench", "--producers", "2", "--consumers", "2", "--duration", "1s",
                "--warmup", "500ms", "--rid", "--batch", "4")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["puts_per_second"] > 0 and report["messages_consumed_per_second"] > 0
    for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        assert report["put_latency"][k] >= 0
    assert report["put_latency"]["p50_ms"] <= report["put_latency"]["p99_ms"] <= report["put_latency"]["max_ms"]
    assert report["errors"] == 0


def test_config_file(workdir):
    port_node = Node(workdir / "cfg")
    conf = workdir / "node.toml"
    conf.write_text(f'node-id = 5\nraft-address = "127.0.0.1:{port_node.raft_port}"\n'
                    f'peer = ["5=127.0.0.1:{port_node.raft_port}"]\nprefix = "cfg/box"\n')
    port_node.extra_args = ["--config", str(conf)]
    port_node.start()
    c = Client(port_node.endpoint)
    c.wait_ready(prefix="cfg/box")
    kind, body = c.one("cfg/box/@cluster/node/5/status")
    assert kind == "ok" and json.loads(body["payload"])["id"] == 5
    c.close()
    port_node.stop()
