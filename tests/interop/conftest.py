"""Fixtures for black-box tests: real mailboxd processes, real Zenoh clients.

Every test talks to the service through the official Python Zenoh client
(`eclipse-zenoh`) with default query settings unless the test is about a
setting.
"""
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import zenoh

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MAILBOX_BUILD_DIR", ROOT / "build"))
MAILBOXD = BUILD_DIR / "mailboxd"
MAILBOX_CLI = BUILD_DIR / "mailbox"
PREFIX = "forge/mailbox"
QUERY_TIMEOUT_S = 10.0
# A line Zenoh logs when a link to another router failed under it: a push
# that timed out ("Closing transport!") or any transport-level error. The
# cluster fixtures fail a test whose nodes logged one (issue #11).
ZENOH_TRANSPORT_ERROR = re.compile(r"\b(ERROR|WARN)\b.*zenoh_transport|Closing transport")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RUNNING = []  # every Node started by a test; stopped after it, pass or fail


class Node:
    """One mailboxd process with its own ports and data directory."""

    def __init__(self, data_dir, extra_args=(), scheme="tcp"):
        self.data_dir = Path(data_dir)
        self.scheme = scheme  # "tls" for a node in secure mode
        self.zenoh_port = free_port()
        self.raft_port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self):
        return f"{self.scheme}/127.0.0.1:{self.zenoh_port}"

    def start(self, wait_listening=True):
        """Starts mailboxd. A node listens only once it can serve (it leads,
        or knows the leader: SPEC v2, "Readiness"), so a node of a cluster
        that has no quorum yet starts with wait_listening=False."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(MAILBOXD), "--listen", self.endpoint, "--raft-address", f"127.0.0.1:{self.raft_port}",
             "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        _RUNNING.append(self)
        return self.wait_listening() if wait_listening else self

    def wait_listening(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailboxd exited with {self.proc.returncode}: {self.log_path.read_text()}")
            if self.scheme == "quic":  # UDP: no port to probe; the node logs when it listens
                if b" serving " in self.log_path.read_bytes():
                    return self
                time.sleep(0.05)
                continue
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.zenoh_port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("mailboxd did not start listening")

    def transport_errors(self):
        """Zenoh transport errors this node has logged."""
        if not self.log_path.exists():
            return []
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if ZENOH_TRANSPORT_ERROR.search(line)]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class Client:
    """A Zenoh client session with helpers that return decoded replies."""

    def __init__(self, endpoint, settings=(), token=None, open_timeout=10):
        """`endpoint`: one endpoint, or a list a client may fail over between.
        `settings`: extra (Zenoh config path, value) pairs, e.g. TLS files.
        `token`: sent in the attachment of every query and put (secure mode)."""
        conf = zenoh.Config()
        conf.insert_json5("mode", '"client"')
        endpoints = endpoint if isinstance(endpoint, list) else [endpoint]
        conf.insert_json5("connect/endpoints", json.dumps(endpoints))
        conf.insert_json5("scouting/multicast/enabled", "false")
        for key, value in settings:
            conf.insert_json5(key, json.dumps(value))
        self.token = token
        # A router that has just started listening may not finish a handshake
        # yet: retry for a few seconds.
        deadline = time.time() + open_timeout
        while True:
            try:
                self.session = zenoh.open(conf)
                break
            except zenoh.ZError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        self.session.close()

    def query(self, selector, payload=None, **kwargs):
        """All replies of one query, as a list of ('ok'|'err', dict)."""
        if self.token is not None and "attachment" not in kwargs:
            kwargs["attachment"] = json.dumps({"token": self.token})
        replies = self.session.get(selector, payload=payload, timeout=QUERY_TIMEOUT_S, **kwargs)
        out = []
        for reply in replies:
            if reply.ok is not None:
                s = reply.ok
                att = s.attachment
                out.append(("ok", {
                    "key": str(s.key_expr),
                    "payload": s.payload.to_bytes(),
                    "encoding": str(s.encoding),
                    "attachment": json.loads(att.to_bytes()) if att is not None else None,
                }))
            else:
                raw = reply.err.payload.to_bytes()
                try:
                    body = json.loads(raw)
                except ValueError:  # Zenoh's own error (e.g. "Timeout"), not the service's
                    body = {"code": "zenoh", "message": raw.decode(errors="replace")}
                out.append(("err", body))
        return out

    def one(self, selector, payload=None, **kwargs):
        replies = self.query(selector, payload=payload, **kwargs)
        assert len(replies) == 1, f"expected one reply to {selector}, got {replies}"
        return replies[0]

    def put_ack(self, box, payload, params=""):
        sel = f"{PREFIX}/{box}/put" + (f"?{params}" if params else "")
        kind, body = self.one(sel, payload=payload)
        assert kind == "ok", body
        return json.loads(body["payload"])["id"]

    def consume(self, box, params=""):
        return self.one(f"{PREFIX}/{box}" + (f"?{params}" if params else ""))

    def put(self, key, payload, **kwargs):
        """A fire-and-forget publication (blocking congestion control), with
        the token unless an attachment is given."""
        if self.token is not None and "attachment" not in kwargs:
            kwargs["attachment"] = json.dumps({"token": self.token})
        self.session.put(key, payload, congestion_control=zenoh.CongestionControl.BLOCK, **kwargs)

    def wait_ready(self, timeout=15, prefix=PREFIX, box="ready-probe"):
        """Waits until the service answers stats (a leader exists)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            replies = self.query(f"{prefix}/{box}/stats")
            if replies and replies[0][0] == "ok":
                return
            last = replies
            time.sleep(0.1)
        raise RuntimeError(f"service not ready: {last}")


@pytest.fixture(autouse=True)
def stop_leftover_nodes():
    yield
    while _RUNNING:
        n = _RUNNING.pop()
        if n.proc and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="mailbox-test-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def node(workdir):
    n = Node(workdir / "node1").start()
    yield n
    n.stop()


@pytest.fixture
def client(node):
    c = Client(node.endpoint)
    c.wait_ready()
    yield c
    c.close()


class Cluster:
    """N mailboxd processes on loopback: full-mesh Zenoh routers, one Raft
    cluster bootstrapped with all of them as voters."""

    def __init__(self, workdir, n, extra_args=(), scheme="tcp", node_args=None):
        """`node_args(i)`: extra arguments of node i (e.g. its --secure-dir)."""
        self.workdir = Path(workdir)
        self.extra_args = list(extra_args)
        self.scheme = scheme
        self.node_args = node_args or (lambda i: [])
        self.nodes = {}
        for i in range(1, n + 1):
            self.nodes[i] = Node(self.workdir / f"n{i}", [], scheme=scheme)
        self.voters = list(self.nodes)

    def args_for(self, i, join=False):
        node = self.nodes[i]
        args = ["--node-id", str(i)]
        if join:
            args.append("--join")
        else:
            for j in self.voters:
                args += ["--peer", f"{j}=127.0.0.1:{self.nodes[j].raft_port}"]
        # The nodes' Zenoh routers are not connected to each other: a client
        # reaches the node it connects to, which hands requests to the leader
        # over the Raft transport (docs/ARCHITECTURE.md).
        return args + self.extra_args + list(self.node_args(i))

    def start_all(self):
        for i, node in self.nodes.items():
            node.extra_args = self.args_for(i)
            node.start(wait_listening=False)
        return self.wait_listening()

    def wait_listening(self):
        for node in self.nodes.values():
            node.wait_listening(timeout=30)
        return self

    def add_node(self, i):
        """Starts node i with --join (not yet a member)."""
        node = Node(self.workdir / f"n{i}", [], scheme=self.scheme)
        self.nodes[i] = node
        node.extra_args = self.args_for(i, join=True)
        return node.start(wait_listening=False)  # it listens once added

    def client(self, i):
        return Client(self.nodes[i].endpoint)

    def assert_no_transport_errors(self):
        found = {i: n.transport_errors() for i, n in self.nodes.items()}
        found = {i: lines for i, lines in found.items() if lines}
        assert not found, f"Zenoh transport errors in node logs: {found}"

    def failover_client(self, first):
        """A client that knows every node, listing node `first` first."""
        order = [first] + [i for i in self.nodes if i != first]
        return Client([self.nodes[i].endpoint for i in order])

    def statuses(self, client):
        replies = client.session.get(f"{PREFIX}/@cluster/node/*/status", target=zenoh.QueryTarget.ALL,
                                     consolidation=zenoh.ConsolidationMode.NONE, timeout=5)
        out = {}
        for r in replies:
            if r.ok is not None:
                st = json.loads(r.ok.payload.to_bytes())
                out[st["id"]] = st
        return out

    def leader(self, client, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for st in self.statuses(client).values():
                if st["state"] == "leader":
                    return st["id"]
            time.sleep(0.1)
        raise RuntimeError("no leader")

    def admin(self, client, op, timeout=60):
        leader = self.leader(client)
        replies = list(client.session.get(f"{PREFIX}/@cluster/node/{leader}/{op}", timeout=timeout))
        assert replies and replies[0].ok is not None, \
            replies and replies[0].err and replies[0].err.payload.to_bytes()
        return True


@pytest.fixture
def cluster3(workdir):
    c = Cluster(workdir, 3).start_all()
    clients = [c.client(i) for i in (1, 2, 3)]
    c.leader(clients[0])
    for cl in clients:
        cl.wait_ready()
    yield c, clients
    for cl in clients:
        cl.close()
    for n in c.nodes.values():
        n.stop()
    c.assert_no_transport_errors()
