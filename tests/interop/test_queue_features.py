"""Black-box tests of the SPEC v2 queue features through eclipse-zenoh with
default query settings: delayed delivery (acknowledged puts and
publications), lease extension, purge, redrive, the mailbox listing, and the
`mailbox` CLI subcommands for them."""
import json
import subprocess
import time

from conftest import MAILBOX_CLI, PREFIX, Client, Node


def stats(client, box):
    kind, body = client.one(f"{PREFIX}/{box}/stats")
    assert kind == "ok", body
    return json.loads(body["payload"])


def ok_json(reply):
    kind, body = reply
    assert kind == "ok", body
    return json.loads(body["payload"])


def err_code(reply):
    kind, body = reply
    assert kind == "err", body
    assert body["message"], body
    return body["code"]


def start(workdir, name, *args):
    node = Node(workdir / name, list(args)).start()
    c = Client(node.endpoint)
    c.wait_ready()
    return node, c


def cli(node, *args, stdin=None):
    return subprocess.run([str(MAILBOX_CLI), "--connect", node.endpoint, *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- delayed delivery

def test_delayed_put_is_hidden_until_due(client):
    delayed_id = client.put_ack("dl", b"later", "delay=1500ms")
    client.put_ack("dl", b"now")
    s = stats(client, "dl")
    assert s["messages"] == 2 and s["delayed"] == 1 and s["leased"] == 0
    kind, body = client.one(f"{PREFIX}/dl/peek?n=10")
    assert kind == "ok"
    assert body["payload"] == b"now", "peek shows only visible messages"
    kind, body = client.consume("dl")
    assert kind == "ok" and body["payload"] == b"now"
    assert err_code(client.consume("dl")) == "empty"
    time.sleep(1.7)
    kind, body = client.consume("dl")
    assert kind == "ok" and body["payload"] == b"later"
    assert body["attachment"]["id"] == delayed_id, "a delayed message keeps its id"
    assert body["attachment"]["deliveries"] == 1


def test_long_poll_wakes_when_a_delayed_message_becomes_due(client):
    client.put_ack("dlw", b"tick", "delay=1s")
    t0 = time.time()
    kind, body = client.consume("dlw", "wait=10s")
    elapsed = time.time() - t0
    assert kind == "ok" and body["payload"] == b"tick"
    assert 0.8 <= elapsed < 3, elapsed


def test_peek_long_poll_wakes_too(client):
    client.put_ack("dlp", b"tock", "delay=1s")
    t0 = time.time()
    kind, body = client.one(f"{PREFIX}/dlp/peek?wait=10s")
    assert kind == "ok" and body["payload"] == b"tock"
    assert 0.8 <= time.time() - t0 < 3


def test_delayed_ttl_counts_from_when_visible(client):
    client.put_ack("dlt", b"short", "delay=2s;ttl=3s")
    time.sleep(3.5)  # past the put time + ttl, but visible for 3 s from the due time
    kind, body = client.one(f"{PREFIX}/dlt/peek")
    assert kind == "ok" and body["payload"] == b"short"
    time.sleep(2.5)
    assert err_code(client.consume("dlt")) == "empty"


def test_delay_bounds_and_bad_delays_change_nothing(client):
    for params in ("delay=8785h", "delay=abc", "delay=-1s", "delay=1.5s"):
        kind, body = client.one(f"{PREFIX}/dlb/put?{params}", payload=b"x")
        assert kind == "err" and body["code"] == "invalid_argument", (params, body)
    assert stats(client, "dlb")["messages"] == 0
    client.put_ack("dlb", b"far", "delay=8784h")  # 366 days
    assert stats(client, "dlb")["delayed"] == 1
    assert err_code(client.one(f"{PREFIX}/dlb?delay=1s")) == "invalid_argument"


def test_delayed_put_with_rid_is_stored_once(client):
    a = client.put_ack("dlr", b"once", "delay=5s;rid=r1")
    b = client.put_ack("dlr", b"once", "delay=5s;rid=r1")
    assert a == b
    assert stats(client, "dlr")["delayed"] == 1


def test_fire_and_forget_delay_in_the_attachment(client):
    client.put(f"{PREFIX}/dlf", b"published", attachment=json.dumps({"delay": "1s"}))
    deadline = time.time() + 5
    while stats(client, "dlf")["delayed"] != 1:
        assert time.time() < deadline, "the publication was not stored"
        time.sleep(0.05)
    assert err_code(client.consume("dlf")) == "empty"
    kind, body = client.consume("dlf", "wait=10s")
    assert kind == "ok" and body["payload"] == b"published"
    # A malformed delay in the attachment: dropped (a publication has no reply).
    client.put(f"{PREFIX}/dlf", b"bad", attachment=json.dumps({"delay": "soon"}))
    client.put(f"{PREFIX}/dlf", b"good")
    kind, body = client.consume("dlf", "wait=5s")
    assert kind == "ok" and body["payload"] == b"good"
    assert stats(client, "dlf")["messages"] == 0


# ---------------------------------------------------------------- lease extension

def test_extend_keeps_a_lease_held(client):
    client.put_ack("ex", b"long job")
    kind, body = client.consume("ex", "lease=1s")
    msg_id = body["attachment"]["id"]
    reply = ok_json(client.one(f"{PREFIX}/ex/extend?id={msg_id};lease=3s"))
    assert reply["id"] == msg_id and reply["lease_expires_at"] > body["attachment"]["lease_expires_at"]
    time.sleep(1.4)  # past the first lease
    assert err_code(client.consume("ex")) == "empty"
    assert stats(client, "ex")["leased"] == 1
    assert ok_json(client.one(f"{PREFIX}/ex/ack?id={msg_id}"))["id"] == msg_id
    assert stats(client, "ex")["messages"] == 0


def test_extend_of_a_lost_lease_is_not_found(client):
    client.put_ack("ex2", b"w")
    kind, body = client.consume("ex2", "lease=300ms")
    msg_id = body["attachment"]["id"]
    assert err_code(client.one(f"{PREFIX}/ex2/extend?id=999999;lease=1s")) == "not_found"
    time.sleep(0.5)
    assert err_code(client.one(f"{PREFIX}/ex2/extend?id={msg_id};lease=1s")) == "not_found"
    kind, body = client.consume("ex2")
    assert kind == "ok" and body["attachment"]["deliveries"] == 2


def test_extend_with_rid_and_bad_input(client):
    client.put_ack("ex3", b"w")
    kind, body = client.consume("ex3", "lease=2s")
    msg_id = body["attachment"]["id"]
    first = ok_json(client.one(f"{PREFIX}/ex3/extend?id={msg_id};lease=10s;rid=e1"))
    time.sleep(0.05)
    again = ok_json(client.one(f"{PREFIX}/ex3/extend?id={msg_id};lease=10s;rid=e1"))
    assert again == first
    for params in ("id=1", "lease=5s", f"id={msg_id};lease=0", f"id={msg_id};lease=13h", f"id={msg_id};lease=x"):
        assert err_code(client.one(f"{PREFIX}/ex3/extend?{params}")) == "invalid_argument", params


# ---------------------------------------------------------------- purge

def test_purge_removes_everything_including_leased_and_delayed(client):
    for i in range(3):
        client.put_ack("pg", f"m{i}".encode())
    client.put_ack("pg", b"later", "delay=1m")
    client.put_ack("other-pg", b"stays")
    assert client.consume("pg", "lease=1m")[0] == "ok"
    assert ok_json(client.one(f"{PREFIX}/pg/purge?rid=p1")) == {"purged": 4}
    s = stats(client, "pg")
    assert s["messages"] == 0 and s["leased"] == 0 and s["delayed"] == 0
    assert stats(client, "other-pg")["messages"] == 1
    client.put_ack("pg", b"new")
    assert ok_json(client.one(f"{PREFIX}/pg/purge?rid=p1")) == {"purged": 4}, "a repeat answers the first result"
    assert stats(client, "pg")["messages"] == 1
    assert ok_json(client.one(f"{PREFIX}/nothing-here/purge")) == {"purged": 0}
    assert err_code(client.one(f"{PREFIX}/pg/purge?n=1")) == "invalid_argument"
    assert stats(client, "pg")["messages"] == 1


# ---------------------------------------------------------------- redrive

def dead_letter(c, box, payloads):
    for p in payloads:
        c.put_ack(box, p)
    for _ in payloads:
        kind, _ = c.consume(box, "lease=200ms")
        assert kind == "ok"
    deadline = time.time() + 5
    while stats(c, f"{box}.dlq")["messages"] < len(payloads):
        assert time.time() < deadline, "messages did not reach the dead letters"
        time.sleep(0.05)


def test_redrive_moves_dead_letters_back_oldest_first(workdir):
    node, c = start(workdir, "redrive", "--max-deliveries", "1")
    dead_letter(c, "rd", [b"a", b"b", b"c"])
    fresh = c.put_ack("rd", b"fresh")
    assert ok_json(c.one(f"{PREFIX}/rd/redrive?n=2")) == {"moved": 2}
    assert stats(c, "rd.dlq")["messages"] == 1
    kind, body = c.consume("rd", "n=10")
    assert kind == "ok"
    metas = body["attachment"]["messages"]
    assert [m["id"] for m in metas][0] == fresh
    assert [int(m["id"]) for m in metas] == sorted(int(m["id"]) for m in metas), "FIFO by id"
    sizes = [m["size"] for m in metas]
    assert body["payload"] == b"fresh" + b"a" + b"b" and sizes == [5, 1, 1]
    assert [m["deliveries"] for m in metas] == [1, 1, 1], "the delivery count starts again"
    assert ok_json(c.one(f"{PREFIX}/rd/redrive?rid=r1")) == {"moved": 1}
    assert ok_json(c.one(f"{PREFIX}/rd/redrive?rid=r1")) == {"moved": 1}
    assert ok_json(c.one(f"{PREFIX}/rd/redrive")) == {"moved": 0}
    kind, body = c.consume("rd")
    assert kind == "ok" and body["payload"] == b"c"
    for params in ("n=0", "n=100001", "n=x", "lease=1s"):
        assert err_code(c.one(f"{PREFIX}/rd/redrive?{params}")) == "invalid_argument", params
    node.stop()


def test_redrive_moves_what_fits_the_quota(workdir):
    node, c = start(workdir, "redrive-quota", "--max-deliveries", "1", "--max-messages-per-mailbox", "3")
    dead_letter(c, "rq", [b"1", b"2", b"3"])
    c.put_ack("rq", b"x")
    c.put_ack("rq", b"y")
    assert ok_json(c.one(f"{PREFIX}/rq/redrive")) == {"moved": 1}
    assert err_code(c.one(f"{PREFIX}/rq/redrive")) == "quota_exceeded"
    assert stats(c, "rq.dlq")["messages"] == 2
    node.stop()


# ---------------------------------------------------------------- listing

def listing(client, selector):
    replies = client.query(selector)
    assert replies, "the service always answers"
    return replies


def test_list_all_and_by_pattern(client):
    for box in ("team-b", "team-a", "other", "team-c"):
        client.put_ack(box, b"x")
    client.put_ack("team-a", b"y")
    client.put_ack("team-d", b"z", "delay=1m")
    client.consume("team-c")  # empty again: not listed
    replies = listing(client, f"{PREFIX}/*/stats")
    assert all(k == "ok" for k, _ in replies), replies
    by_key = {b["key"]: json.loads(b["payload"]) for _, b in replies}
    assert sorted(by_key) == [f"{PREFIX}/{b}/stats" for b in ("other", "team-a", "team-b", "team-d")]
    assert by_key[f"{PREFIX}/team-a/stats"]["messages"] == 2
    assert by_key[f"{PREFIX}/team-d/stats"]["delayed"] == 1
    assert by_key[f"{PREFIX}/other/stats"]["mailbox"] == "other"
    replies = listing(client, f"{PREFIX}/team-$*/stats")
    assert sorted(json.loads(b["payload"])["mailbox"] for _, b in replies) == ["team-a", "team-b", "team-d"]
    replies = listing(client, f"{PREFIX}/$*-b/stats")
    assert [json.loads(b["payload"])["mailbox"] for _, b in replies] == ["team-b"]


def test_list_pages_with_limit_and_after(client):
    names = [f"page-{i:03d}" for i in range(25)]
    for n in names:
        client.put_ack(n, b"x")
    seen = []
    after = ""
    while True:
        sel = f"{PREFIX}/page-$*/stats?limit=10" + (f";after={after}" if after else "")
        replies = client.query(sel)
        if replies[0][0] == "err":
            assert replies[0][1]["code"] == "empty"
            break
        page = sorted(json.loads(b["payload"])["mailbox"] for _, b in replies)
        assert len(page) <= 10
        seen += page
        if len(page) < 10:
            break
        after = page[-1]
    assert seen == names


def test_list_without_matches_is_empty_and_wildcards_elsewhere_are_bad_input(client):
    assert err_code(client.one(f"{PREFIX}/nomatch-$*/stats")) == "empty"
    for sel in (f"{PREFIX}/*", f"{PREFIX}/*/peek", f"{PREFIX}/*/purge", f"{PREFIX}/team-$*/redrive",
                f"{PREFIX}/**/stats", f"{PREFIX}/*/stats?limit=0", f"{PREFIX}/*/stats?limit=10001",
                f"{PREFIX}/*/stats?after=@x", f"{PREFIX}/*/stats?n=1"):
        replies = client.query(sel)
        assert replies and all(k == "err" and b["code"] == "invalid_argument" for k, b in replies), (sel, replies)


def test_list_and_purge_through_followers(cluster3):
    cluster, clients = cluster3
    clients[0].put_ack("cl-a", b"1")
    clients[1].put_ack("cl-b", b"2")
    for c in clients:
        replies = c.query(f"{PREFIX}/cl-$*/stats")
        assert sorted(json.loads(b["payload"])["mailbox"] for _, b in replies) == ["cl-a", "cl-b"], replies
    assert ok_json(clients[2].one(f"{PREFIX}/cl-a/purge")) == {"purged": 1}
    assert stats(clients[1], "cl-a")["messages"] == 0
    clients[2].put_ack("cl-c", b"3", "delay=1s")
    kind, body = clients[0].consume("cl-c", "wait=10s")
    assert kind == "ok" and body["payload"] == b"3"


# ---------------------------------------------------------------- restart

def test_delayed_and_leased_messages_survive_a_restart(workdir):
    node = Node(workdir / "restart").start()
    c = Client(node.endpoint)
    c.wait_ready()
    c.put_ack("rs", b"later", "delay=2s")
    c.put_ack("rs", b"job")
    kind, body = c.consume("rs", "lease=1m")
    assert kind == "ok"
    c.close()
    node.stop()
    node.start()
    c = Client(node.endpoint)
    c.wait_ready()
    s = stats(c, "rs")
    assert s["delayed"] == 1 and s["leased"] == 1
    kind, got = c.consume("rs", "wait=10s")
    assert kind == "ok" and got["payload"] == b"later"
    c.close()
    node.stop()


# ---------------------------------------------------------------- the CLI

def test_cli_queue_subcommands(node, client):
    r = cli(node, "put", "cli-q", "hello", "--delay", "1s")
    assert r.returncode == 0, r.stderr
    assert stats(client, "cli-q")["delayed"] == 1
    r = cli(node, "put", "cli-q", "ff", "--fire-and-forget", "--delay", "30s")
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 5
    while stats(client, "cli-q")["delayed"] != 2:
        assert time.time() < deadline
        time.sleep(0.05)
    r = cli(node, "ls", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and [row["mailbox"] for row in rows] == ["cli-q"], r
    r = cli(node, "ls", "cli-$*")
    assert r.returncode == 0 and "cli-q" in r.stdout
    # The deepest is found among every mailbox, not among the first by name.
    for i in range(3):
        client.put_ack("cli-zz-deep", f"d{i}".encode())
    r = cli(node, "--json", "ls", "--sort", "depth", "--limit", "1", "--page-size", "1")
    assert r.returncode == 0 and [json.loads(l)["mailbox"] for l in r.stdout.splitlines()] == ["cli-zz-deep"], r
    r = cli(node, "--json", "ls", "--limit", "1")
    assert r.returncode == 0 and [json.loads(l)["mailbox"] for l in r.stdout.splitlines()] == ["cli-q"], r
    assert cli(node, "purge", "cli-zz-deep", "--yes").returncode == 0
    r = cli(node, "purge", "cli-q")  # stdin is not a terminal: --yes is needed
    assert r.returncode == 2 and "--yes" in r.stderr
    assert stats(client, "cli-q")["messages"] == 2
    r = cli(node, "--json", "purge", "cli-q", "--yes")
    assert r.returncode == 0 and json.loads(r.stdout) == {"purged": 2}, r
    client.put_ack("cli-e", b"job")
    r = cli(node, "--json", "get", "cli-e", "--lease", "1s")
    msg_id = json.loads(r.stdout)["id"]
    r = cli(node, "extend", "cli-e", msg_id, "5s")
    assert r.returncode == 0 and int(r.stdout) > 0, r
    r = cli(node, "extend", "cli-e", "999999", "5s")
    assert r.returncode == 1 and "not_found" in r.stderr
    r = cli(node, "redrive", "cli-e")
    assert r.returncode == 0 and r.stdout.strip() == "0", r


def test_cli_watch_exec_extends_the_lease_while_the_handler_runs(node, client):
    client.put_ack("cli-w", b"slow work")
    # The handler outlives its 1 s lease by far; watch keeps extending it,
    # then acks it on exit 0.
    r = cli(node, "watch", "cli-w", "--lease", "1s", "--limit", "1", "--wait", "2s",
            "--exec", "cat > /dev/null; sleep 2.5")
    assert r.returncode == 0, r.stderr
    s = stats(client, "cli-w")
    assert s["messages"] == 0, s


def test_cli_watch_exec_nacks_on_failure(node, client):
    client.put_ack("cli-f", b"bad")
    r = cli(node, "watch", "cli-f", "--lease", "1m", "--limit", "1", "--wait", "2s", "--exec", "exit 3")
    assert r.returncode == 0, r.stderr
    kind, body = client.consume("cli-f")
    assert kind == "ok" and body["attachment"]["deliveries"] == 2


def test_cli_top_shows_the_cluster_and_the_deepest_mailboxes_with_their_rate(node, client):
    for i in range(5):
        client.put_ack("top-deep", f"{i}".encode())
    client.put_ack("top-shallow", b"x")
    # Two frames: the second shows the deep mailbox's growth in between.
    proc = subprocess.Popen([str(MAILBOX_CLI), "--connect", node.endpoint, "top", "--frames", "2",
                             "--interval-ms", "1500", "--rows", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)
    for i in range(3):
        client.put_ack("top-deep", f"more{i}".encode())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    frames = out.split("mailbox top")[1:]
    assert len(frames) == 2, out
    first, second = frames
    assert "2 mailboxes" in first and "leader" in first, first
    # --rows 1: only the deepest.
    assert "top-deep" in first and "top-shallow" not in first, first
    deep = [line for line in second.splitlines() if line.startswith("top-deep")]
    assert deep and deep[0].split()[1] == "8", second
    assert deep[0].split()[2].startswith("+"), f"a growing mailbox shows a positive rate: {deep}"
    assert "\033[2J" not in out, "not a terminal: no screen clearing"
