"""Readiness (SPEC v2): a node accepts client sessions only once it can
serve them, and from then on a publication it receives while the cluster has
a leader is stored. Issue #14 found the seed's own walkthrough losing the
first publication when run right after start; these tests put in the first
moment a session opens."""
import json
import os
import signal
import socket
import subprocess
import time

import zenoh

from conftest import MAILBOXD, PREFIX, Client, Cluster, Node


def open_session_as_soon_as_possible(endpoint, timeout=30):
    """Opens a client session on the first attempt that succeeds, retrying
    without pause: the session opens in the first moment the node accepts."""
    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    conf.insert_json5("connect/timeout_ms", "50")
    deadline = time.time() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return zenoh.open(conf), attempts
        except zenoh.ZError:
            if time.time() > deadline:
                raise


def publish_and_put_at_once(session, box):
    """A blocking publication and an acknowledged put, the instant the
    session is open; returns the put's replies."""
    session.put(f"{PREFIX}/{box}", b"first publication", congestion_control=zenoh.CongestionControl.BLOCK)
    return list(session.get(f"{PREFIX}/{box}/put", payload=b"first put", timeout=10))


def consume_all(client, box, expect, wait="3s"):
    got = []
    while len(got) < expect:
        kind, body = client.consume(box, f"wait={wait}")
        assert kind == "ok", f"after {got}: {body}"
        got.append(body["payload"])
    return got


def test_a_single_node_serves_the_first_session_it_accepts(workdir):
    node = Node(workdir / "n1").start(wait_listening=False)
    session, attempts = open_session_as_soon_as_possible(node.endpoint)
    replies = publish_and_put_at_once(session, "first")
    session.close()
    assert [r.ok is not None for r in replies] == [True], [r.err and r.err.payload.to_bytes() for r in replies]
    client = Client(node.endpoint)
    assert sorted(consume_all(client, "first", 2)) == [b"first publication", b"first put"]
    client.close()
    node.stop()
    assert attempts > 1, "the test raced the start-up: the node was already listening"


def test_a_restarted_follower_stores_the_first_publication_it_receives(cluster3):
    c, clients = cluster3
    leader = c.leader(clients[0])
    follower = next(i for i in (1, 2, 3) if i != leader)
    clients[follower - 1].close()
    c.nodes[follower].stop()
    c.nodes[follower].start(wait_listening=False)
    session, _ = open_session_as_soon_as_possible(c.nodes[follower].endpoint)
    session.put(f"{PREFIX}/restarted", b"right after restart", congestion_control=zenoh.CongestionControl.BLOCK)
    session.close()
    other = clients[leader - 1]
    assert consume_all(other, "restarted", 1) == [b"right after restart"]
    clients[follower - 1] = c.client(follower)


def test_a_node_without_a_leader_does_not_accept_sessions(workdir):
    c = Cluster(workdir, 3)
    first = c.nodes[1]
    first.extra_args = c.args_for(1)
    first.start(wait_listening=False)
    time.sleep(3)  # several election timeouts: it cannot win alone
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", first.zenoh_port)) != 0, "listening without a quorum"
    for i in (2, 3):
        c.nodes[i].extra_args = c.args_for(i)
        c.nodes[i].start(wait_listening=False)
    c.wait_listening()
    client = c.client(1)
    client.wait_ready()
    assert client.put_ack("quorum", b"served")
    client.close()
    for n in c.nodes.values():
        n.stop()
    c.assert_no_transport_errors()


def test_systemd_is_told_ready_only_when_the_node_serves(workdir):
    sock_path = str(workdir / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(20)
    node = Node(workdir / "n1")
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    log = open(node.log_path, "ab")
    proc = subprocess.Popen([str(MAILBOXD), "--listen", node.endpoint, "--raft-address", f"127.0.0.1:{node.raft_port}",
                             "--data-dir", str(node.data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        message = notify.recv(4096).decode()
        assert "READY=1" in message, message
        # Ready means serving: a session opens and a query is answered now.
        client = Client(node.endpoint)
        kind, body = client.one(f"{PREFIX}/ready/stats")
        assert kind == "ok", body
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in notify.recv(4096).decode()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        notify.close()
