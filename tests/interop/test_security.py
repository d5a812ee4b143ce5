"""Secure mode, black-box (SPEC v2 "Access control", docs/SECURITY.md):
real mailboxd processes in secure mode, the official Python Zenoh client over
TLS (and QUIC, the other encrypted transport secure mode accepts), tokens
made by `mailbox token create`.

Each refusal is checked by its effect: a forbidden consume leaves the
message in place, a rogue queryable's answer never arrives, a rogue
subscriber hears nothing, a refused session does not open.
"""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import xxhash
import zenoh

from conftest import MAILBOX_CLI, PREFIX, ROOT, BUILD_DIR, Client, Cluster, Node

CLUSTER = "sec-test"
PKI_SCRIPT = ROOT / "scripts" / "make-test-pki.sh"
ALL_OPS = "put,consume,peek,stats,ack"


def make_pki(out, nodes, auth):
    subprocess.run([str(PKI_SCRIPT), str(out), "--nodes", str(nodes), "--cluster", CLUSTER, "--auth", auth,
                    "--clients", "alice,bob,mallory"],
                   check=True, capture_output=True, env={**os.environ, "MAILBOX_BIN": str(MAILBOX_CLI)})
    return Path(out)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, three node directories (certificate authentication), clients."""
    return make_pki(tmp_path_factory.mktemp("pki") / "cert", 3, "certificate")


@pytest.fixture(scope="module")
def pki_password(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki") / "password", 3, "password")


def token(pki, sub, mailboxes, ops, key=None, cluster=CLUSTER, expires_at=None, ttl="1h"):
    args = [str(MAILBOX_CLI), "token", "create", "--sub", sub, "--mailboxes", mailboxes, "--ops", ops,
            "--key", str(key or pki / "signing" / "k1.key"), "--cluster", cluster, "--ttl", ttl]
    if expires_at is not None:
        args += ["--expires-at", str(expires_at)]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def tls_settings(pki, client=None, ca=True):
    """Python client settings: trust the test CA, present `client`'s certificate."""
    out = [("transport/link/tls/root_ca_certificate", str(pki / "ca.pem"))] if ca else []
    if client:
        out += [("transport/link/tls/connect_certificate", str(pki / "clients" / f"{client}.pem")),
                ("transport/link/tls/connect_private_key", str(pki / "clients" / f"{client}.key")),
                ("transport/link/tls/enable_mtls", True)]
    return out


def password_settings(pki, user, password=None):
    if password is None:
        password = (pki / "clients" / f"{user}.password").read_text().strip()
    return tls_settings(pki) + [("transport/auth/usrpwd/user", user), ("transport/auth/usrpwd/password", password)]


def secure_node(workdir, pki, name="node1", node_id=1, scheme="tls"):
    return Node(workdir / name, ["--secure-dir", str(pki / f"node{node_id}"), "--node-id", str(node_id)],
                scheme=scheme)


def status(client, node_id=1):
    kind, body = client.one(f"{PREFIX}/@cluster/node/{node_id}/status")
    assert kind == "ok", body
    return json.loads(body["payload"])


@pytest.fixture(params=["tls", "quic"])
def secure(request, workdir, pki):
    """One node in secure mode (over TLS, and over QUIC) and a session for
    alice, for bob and for mallory (each with a certificate), with tokens for
    their own mailboxes."""
    node = secure_node(workdir, pki, scheme=request.param).start()
    tokens = {u: token(pki, u, u, ALL_OPS) for u in ("alice", "bob")}
    clients = {u: Client(node.endpoint, tls_settings(pki, u), tokens.get(u)) for u in ("alice", "bob", "mallory")}
    clients["bob"].wait_ready(box="bob")
    yield node, clients, tokens
    for c in clients.values():
        c.close()
    node.stop()


def code_of(reply):
    kind, body = reply
    assert kind == "err", body
    return body["code"], body["message"]


def test_alices_token_cannot_touch_bobs_mailbox(secure):
    node, c, _ = secure
    bob_id = c["bob"].put_ack("bob", b"for bob only")
    for op in ("", "/consume", "/peek", "/stats", f"/ack?id={bob_id}", f"/nack?id={bob_id}", "/consume?lease=30s"):
        code, message = code_of(c["alice"].one(f"{PREFIX}/bob{op}"))
        assert code == "forbidden", (op, message)
        assert "bob" in message
    code, _ = code_of(c["alice"].one(f"{PREFIX}/bob/put", payload=b"spam"))
    assert code == "forbidden"
    # Nothing changed: bob's message is still there, and only his.
    kind, body = c["bob"].one(f"{PREFIX}/bob/stats")
    assert kind == "ok" and json.loads(body["payload"])["messages"] == 1
    kind, body = c["bob"].consume("bob")
    assert kind == "ok" and body["payload"] == b"for bob only"
    # Her own mailbox works; a right she lacks is forbidden there too.
    assert c["alice"].put_ack("alice", b"mine")
    st = status(c["bob"])
    assert st["forbidden"] >= 8


def test_bad_tokens_are_unauthorized_and_change_nothing(secure, pki, tmp_path):
    node, c, tokens = secure
    c["bob"].put_ack("bob", b"keep me")
    good = tokens["bob"]
    header, claims, signature = good.split(".")
    raw = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    raw["mbx"] = ["*"]
    tampered_claims = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    tampered = f"{header}.{tampered_claims}.{signature}"
    subprocess.run([str(MAILBOX_CLI), "keys", "create", "--kid", "k9", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    cases = {
        "expired": token(pki, "bob", "bob", ALL_OPS, expires_at=int(time.time()) - 3600),
        "foreign cluster": token(pki, "bob", "bob", ALL_OPS, cluster="another-cluster"),
        "unknown key": token(pki, "bob", "bob", ALL_OPS, key=tmp_path / "k9.key"),
        "tampered": tampered,
        "garbage": "not-a-token",
        "alg none": base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').decode().rstrip("=") + "." +
                    tampered_claims + ".",
    }
    expected_words = {"expired": "expired", "foreign cluster": "another cluster", "unknown key": "unknown key",
                      "tampered": "signature"}
    for name, bad in cases.items():
        for op in ("", "/peek", "/stats", "/ack?id=1"):
            code, message = code_of(c["mallory"].one(f"{PREFIX}/bob{op}", attachment=json.dumps({"token": bad})))
            assert code == "unauthorized", (name, op, message)
            assert bad[:40] not in message, "the reply must not echo the token"
            if name in expected_words:
                assert expected_words[name] in message, (name, message)
    # No attachment at all, and an attachment without a token.
    for attachment in (None, "{}", "plain text"):
        kwargs = {} if attachment is None else {"attachment": attachment}
        code, _ = code_of(c["mallory"].one(f"{PREFIX}/bob", **kwargs))
        assert code == "unauthorized"
    kind, body = c["bob"].one(f"{PREFIX}/bob/stats")
    assert json.loads(body["payload"])["messages"] == 1
    assert status(c["bob"])["unauthorized"] >= len(cases) * 4 + 3


def test_publications_without_a_valid_token_are_dropped_and_counted(secure):
    node, c, _ = secure
    before = status(c["bob"])
    c["mallory"].put(f"{PREFIX}/bob", b"no token")  # mallory has no token
    c["alice"].put(f"{PREFIX}/bob", b"wrong mailbox")
    c["bob"].put(f"{PREFIX}/bob", b"welcome")
    deadline = time.time() + 10
    while time.time() < deadline:
        st = status(c["bob"])
        if st["publications"] - before["publications"] >= 3:
            break
        time.sleep(0.05)
    assert st["publications_unauthorized"] - before["publications_unauthorized"] == 2
    assert st["publications_dropped"] - before["publications_dropped"] == 2
    kind, body = c["bob"].one(f"{PREFIX}/bob?n=10")
    assert kind == "ok" and body["payload"] == b"welcome", body


def test_a_client_cannot_answer_for_the_service(secure):
    node, c, _ = secure
    answered = []
    rogue = [c["mallory"].session.declare_queryable(ke, lambda q: (answered.append(str(q.key_expr)),
                                                                  q.reply(q.key_expr, b'{"id":"666"}')))
             for ke in (f"{PREFIX}/**", f"{PREFIX}/bob/put", f"{PREFIX}/bob")]
    time.sleep(0.5)
    for target in (zenoh.QueryTarget.ALL, zenoh.QueryTarget.BEST_MATCHING):
        replies = c["bob"].query(f"{PREFIX}/bob/put", payload=b"real", target=target,
                                 consolidation=zenoh.ConsolidationMode.NONE)
        assert len(replies) == 1, replies
        kind, body = replies[0]
        assert kind == "ok" and json.loads(body["payload"])["id"] != "666"
    assert answered == [], "a query reached the rogue queryable"
    for q in rogue:
        q.undeclare()


def test_a_client_cannot_overhear_or_pose_as_a_node(secure):
    node, c, _ = secure
    heard = []
    subs = [c["mallory"].session.declare_subscriber(ke, lambda s: heard.append(str(s.key_expr)))
            for ke in (f"{PREFIX}/*", f"{PREFIX}/**", f"{PREFIX}/bob")]
    lease = c["mallory"].session.liveliness().declare_token(f"{PREFIX}/@cluster/leader/99")
    time.sleep(0.5)
    for i in range(5):
        c["bob"].put(f"{PREFIX}/bob", f"secret {i}".encode())
    c["bob"].put_ack("bob", b"acked secret")
    time.sleep(1.0)
    assert heard == [], "a client overheard publications"
    st = status(c["bob"])
    assert st["state"] == "leader" and st["leader"] == st["id"], "a client's token does not make it the leader"
    kind, body = c["bob"].one(f"{PREFIX}/bob/stats")
    assert json.loads(body["payload"])["messages"] == 6
    lease.undeclare()
    for s in subs:
        s.undeclare()


def test_clients_reach_only_mailbox_keys(secure):
    node, c, tokens = secure
    # A wildcard query beyond one chunk, and the nodes' publish key: refused
    # by the access-control list, so the client sees an empty stream.
    assert c["bob"].query(f"{PREFIX}/**") == []
    assert c["bob"].query(f"{PREFIX}/@cluster/node/1/publish?mailbox=bob;publication=7", payload=b"forged") == []
    kind, body = c["bob"].one(f"{PREFIX}/bob/stats")
    assert json.loads(body["payload"])["messages"] == 0
    # Membership changes need the admin right; status does not.
    code, message = code_of(c["bob"].one(f"{PREFIX}/@cluster/node/1/transfer"))
    assert code == "forbidden" and "admin" in message
    code, _ = code_of(c["mallory"].one(f"{PREFIX}/@cluster/node/1/remove?id=2"))
    assert code == "unauthorized"
    assert status(c["mallory"])["state"] == "leader"


def test_a_session_needs_a_certificate_of_the_cluster(secure, pki, tmp_path):
    node, _, _ = secure
    with pytest.raises(zenoh.ZError):
        Client(node.endpoint, tls_settings(pki), open_timeout=1)  # TLS, no client certificate
    with pytest.raises(zenoh.ZError):
        Client(f"tcp/127.0.0.1:{node.zenoh_port}", (), open_timeout=1)  # plain TCP
    # A certificate from another CA.
    other = make_pki(tmp_path / "other", 1, "certificate")
    with pytest.raises(zenoh.ZError):
        Client(node.endpoint, [("transport/link/tls/root_ca_certificate", str(pki / "ca.pem")),
                               ("transport/link/tls/connect_certificate", str(other / "clients" / "alice.pem")),
                               ("transport/link/tls/connect_private_key", str(other / "clients" / "alice.key")),
                               ("transport/link/tls/enable_mtls", True)], open_timeout=1)


def test_password_authentication(workdir, pki_password):
    node = secure_node(workdir, pki_password).start()
    bob_token = token(pki_password, "bob", "bob", ALL_OPS)
    with pytest.raises(zenoh.ZError):
        Client(node.endpoint, password_settings(pki_password, "bob", "wrong-password"), open_timeout=1)
    with pytest.raises(zenoh.ZError):
        Client(node.endpoint, tls_settings(pki_password), open_timeout=1)  # no user at all
    with pytest.raises(zenoh.ZError):
        Client(node.endpoint, password_settings(pki_password, "eve", "guess"), open_timeout=1)
    bob = Client(node.endpoint, password_settings(pki_password, "bob"), bob_token)
    bob.wait_ready(box="bob")
    assert bob.put_ack("bob", b"over password")
    code, _ = code_of(bob.one(f"{PREFIX}/alice/peek"))
    assert code == "forbidden"
    bob.close()
    node.stop()


def test_key_rotation_on_sighup_keeps_sessions(workdir, pki, tmp_path):
    keys = tmp_path / "node1"
    shutil.copytree(pki / "node1", keys)
    node = secure_node(workdir, tmp_path).start()
    subprocess.run([str(MAILBOX_CLI), "keys", "create", "--kid", "k2", "--out", str(tmp_path)], check=True,
                   capture_output=True)
    old = token(pki, "bob", "bob", ALL_OPS)
    new = token(pki, "bob", "bob", ALL_OPS, key=tmp_path / "k2.key")
    bob = Client(node.endpoint, tls_settings(pki, "bob"), old)
    bob.wait_ready(box="bob")
    att = lambda t: json.dumps({"token": t})
    assert bob.one(f"{PREFIX}/bob/stats", attachment=att(old))[0] == "ok"
    assert code_of(bob.one(f"{PREFIX}/bob/stats", attachment=att(new)))[0] == "unauthorized"

    def hup_and_wait(expect):
        """SIGHUP, then the node's log says which keys it holds now."""
        reloads = lambda: [l for l in node.log_path.read_text().splitlines() if "token keys reloaded" in l]
        seen = len(reloads())
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            lines = reloads()
            if len(lines) > seen:
                assert lines[-1].endswith(expect), lines[-1]
                return
            time.sleep(0.05)
        raise AssertionError("no reload logged")

    shutil.copy(tmp_path / "k2.pub", keys / "token-keys" / "k2.pub")
    hup_and_wait(": k1,k2")
    for t in (old, new):
        assert bob.one(f"{PREFIX}/bob/stats", attachment=att(t))[0] == "ok"
    (keys / "token-keys" / "k1.pub").unlink()
    hup_and_wait(": k2")
    code, message = code_of(bob.one(f"{PREFIX}/bob/stats", attachment=att(old)))
    assert code == "unauthorized" and "unknown key" in message
    assert bob.one(f"{PREFIX}/bob/put", payload=b"after rotation", attachment=att(new))[0] == "ok"
    # The same session throughout, and the node kept running.
    assert node.proc.poll() is None
    assert bob.session.info.zid() is not None
    bob.close()
    node.stop()


def test_open_mode_refuses_other_addresses(workdir):
    for args in (["--listen", "tcp/0.0.0.0:7"], ["--listen", "tcp/127.0.0.1:7", "--raft-address", "0.0.0.0:8"]):
        r = subprocess.run([str(BUILD_DIR / "mailboxd"), "--data-dir", str(workdir / "x"), *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, r
        assert "--insecure" in r.stderr
    assert not (workdir / "x").exists()


def test_open_mode_says_so_loudly(node):
    deadline = time.time() + 5
    while time.time() < deadline and b"OPEN MODE" not in node.log_path.read_bytes():
        time.sleep(0.05)
    assert b"OPEN MODE" in node.log_path.read_bytes()


def test_secure_mode_refuses_plain_tcp_and_a_foreign_certificate(workdir, pki):
    r = subprocess.run([str(BUILD_DIR / "mailboxd"), "--secure-dir", str(pki / "node1"), "--data-dir",
                        str(workdir / "x"), "--listen", "tcp/127.0.0.1:7"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "TLS only" in r.stderr, r
    # Node 2's directory, started as node 1: its certificate names another node.
    r = subprocess.run([str(BUILD_DIR / "mailboxd"), "--secure-dir", str(pki / "node2"), "--data-dir",
                        str(workdir / "x"), "--listen", "tls/127.0.0.1:7"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "node-2" in r.stderr, r


def test_zenoh_config_file_is_merged_under_the_flags(workdir):
    decoy = Node(workdir / "unused")
    cfg = workdir / "zenoh.json5"
    cfg.write_text("{ // an operator's file\n listen: { endpoints: ['tcp/127.0.0.1:%d'] },\n"
                   " transport: { link: { tx: { lease: 5000 } } } }\n" % decoy.zenoh_port)
    node = Node(workdir / "n1", ["--zenoh-config", str(cfg)]).start()
    c = Client(node.endpoint)
    c.wait_ready()
    assert c.put_ack("cfg", b"x")
    import socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", decoy.zenoh_port)) != 0, "the flags' endpoints win"
    c.close()
    node.stop()
    cfg.write_text("{ transport: { link: { tx: { lease: 'not a number' } } } }")
    bad = Node(workdir / "n2", ["--zenoh-config", str(cfg)])
    with pytest.raises(RuntimeError, match="bad Zenoh config"):
        bad.start()


@pytest.fixture(params=[("tls", "certificate"), ("quic", "certificate"), ("tls", "password")],
                ids=["tls-certificate", "quic-certificate", "tls-password"])
def secure_cluster(request, workdir, pki, pki_password):
    """Three nodes in secure mode; nodes know each other by certificate, or
    (password mode) by user name on one end of a link and by certificate on
    the other. Returns the cluster, its PKI and how a client authenticates."""
    scheme, auth = request.param
    keys = pki if auth == "certificate" else pki_password
    c = Cluster(workdir, 3, scheme=scheme,
                node_args=lambda i: ["--secure-dir", str(keys / f"node{i}")]).start_all()
    settings = (lambda user: tls_settings(keys, user)) if auth == "certificate" else \
        (lambda user: password_settings(keys, user))
    yield c, keys, settings
    for n in c.nodes.values():
        n.stop()
    c.assert_no_transport_errors()


def test_secure_cluster(secure_cluster):
    c, pki, settings = secure_cluster
    tokens = {u: token(pki, u, u, ALL_OPS) for u in ("alice", "bob")}
    # Each client on another node: followers pass everything to the leader.
    clients = {u: Client(c.nodes[i].endpoint, settings(u), tokens.get(u))
               for u, i in (("alice", 1), ("bob", 2), ("mallory", 3))}
    clients["bob"].wait_ready(box="bob")
    bob_id = clients["bob"].put_ack("bob", b"cluster secret")
    for op in ("", "/peek", "/stats", f"/ack?id={bob_id}"):
        code, _ = code_of(clients["alice"].one(f"{PREFIX}/bob{op}"))
        assert code == "forbidden", op
    code, _ = code_of(clients["mallory"].one(f"{PREFIX}/bob"))
    assert code == "unauthorized"
    # A rogue on node 3 neither answers nor overhears.
    answered, heard = [], []
    q = clients["mallory"].session.declare_queryable(f"{PREFIX}/**", lambda q: answered.append(1))
    s = clients["mallory"].session.declare_subscriber(f"{PREFIX}/**", lambda s: heard.append(1))
    time.sleep(0.5)
    clients["bob"].put(f"{PREFIX}/bob", b"published via node 2")
    replies = clients["bob"].query(f"{PREFIX}/bob/stats", target=zenoh.QueryTarget.ALL,
                                   consolidation=zenoh.ConsolidationMode.NONE)
    assert len(replies) == 1 and replies[0][0] == "ok", replies
    time.sleep(0.5)
    assert answered == [] and heard == []
    kind, body = clients["bob"].one(f"{PREFIX}/bob?n=10")
    assert kind == "ok" and body["attachment"]["count"] == 2, body
    # Membership changes need the admin right, through any node.
    admin = token(pki, "ops", "*", "admin")
    leader = c.leader(clients["bob"])
    code, _ = code_of(clients["bob"].one(f"{PREFIX}/@cluster/node/{leader}/transfer"))
    assert code == "forbidden"
    kind, body = clients["bob"].one(f"{PREFIX}/@cluster/node/{leader}/transfer",
                                    attachment=json.dumps({"token": admin}))
    assert kind == "ok", body
    q.undeclare()
    s.undeclare()
    for cl in clients.values():
        cl.close()


def test_queue_features_need_their_rights_and_list_shows_only_covered_mailboxes(workdir, pki):
    """SPEC v2: extend needs `ack`, purge `purge`, redrive `redrive`; the
    list shows only the mailboxes the token may list."""
    node = secure_node(workdir, pki, scheme="tls").start()
    try:
        writer = Client(node.endpoint, tls_settings(pki, "bob"), token(pki, "bob", "team-*,solo", "put,consume,ack,stats"))
        writer.wait_ready(box="team-a")
        for box in ("team-a", "team-b", "solo"):
            writer.put_ack(box, b"x")
        kind, body = writer.consume("team-a", "lease=1m")
        msg_id = body["attachment"]["id"]
        assert writer.one(f"{PREFIX}/team-a/extend?id={msg_id};lease=2m")[0] == "ok"
        for op in ("/purge", "/redrive"):
            assert code_of(writer.one(f"{PREFIX}/team-a{op}"))[0] == "forbidden", op
        assert code_of(writer.one(f"{PREFIX}/*/stats"))[0] == "forbidden"
        lister = Client(node.endpoint, tls_settings(pki, "alice"), token(pki, "alice", "team-*", "list,purge,redrive"))
        replies = lister.query(f"{PREFIX}/*/stats")
        assert sorted(json.loads(b["payload"])["mailbox"] for k, b in replies if k == "ok") == ["team-a", "team-b"]
        assert code_of(lister.one(f"{PREFIX}/solo/purge"))[0] == "forbidden"
        kind, body = lister.one(f"{PREFIX}/team-b/purge")
        assert kind == "ok" and json.loads(body["payload"]) == {"purged": 1}
        kind, body = lister.one(f"{PREFIX}/team-b/redrive")
        assert kind == "ok" and json.loads(body["payload"]) == {"moved": 0}
        assert code_of(lister.one(f"{PREFIX}/solo$*/stats"))[0] == "empty"
        writer.close()
        lister.close()
    finally:
        node.stop()


def raft_frame(kind, body):
    """One Raft transport frame (docs/PROTOCOL.md, "Raft transport")."""
    return (struct.pack("<IBBHQ", len(body), kind, 1, 0, xxhash.xxh3_64_intdigest(body)) + body)


def raft_hello(node_id, cluster=CLUSTER, address="127.0.0.1:9"):
    body = struct.pack("<QH", node_id, len(cluster)) + cluster.encode() + struct.pack("<H", len(address)) + \
        address.encode()
    return raft_frame(1, body)


def raft_probe(port, hello, cert=None, key=None, hold=1.5):
    """Connects to a node's Raft port (over TLS when `cert` is given: the
    client does not check the node, only the node decides), says `hello`,
    and reports whether the node kept the connection open for `hold` s."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.load_cert_chain(str(cert), str(key))
            try:
                sock = ctx.wrap_socket(sock)
            except (ssl.SSLError, OSError):
                return False
        try:
            sock.sendall(hello)
            sock.settimeout(hold)
            return sock.recv(1) != b""  # the node writes nothing on an accepted connection: b"" means closed
        except socket.timeout:
            return True
        except (ssl.SSLError, OSError):
            return False
    finally:
        sock.close()


def test_a_process_that_is_not_a_node_cannot_reach_the_raft_group(workdir, pki, pki_password):
    """Mutual TLS on the Raft transport: only the holder of node N's
    certificate (from the cluster's CA) may speak as node N."""
    node = secure_node(workdir, pki).start()
    admin = Client(node.endpoint, tls_settings(pki, "alice"), token(pki, "ops", "*", "admin,stats"))
    admin.wait_ready(box="alice")
    before = status(admin)
    port = node.raft_port
    # Positive control: node 2's own certificate, saying it is node 2.
    assert raft_probe(port, raft_hello(2), pki / "node2" / "node.pem", pki / "node2" / "node.key")
    refused = [
        raft_probe(port, raft_hello(2)),                                                      # plain TCP
        raft_probe(port, raft_hello(2), pki / "clients" / "alice.pem", pki / "clients" / "alice.key"),  # a client
        raft_probe(port, raft_hello(3), pki / "node2" / "node.pem", pki / "node2" / "node.key"),  # node 2 as 3
        raft_probe(port, raft_hello(2), pki_password / "node2" / "node.pem",                  # another CA
                   pki_password / "node2" / "node.key"),
    ]
    assert refused == [False] * 4
    deadline = time.time() + 5
    while status(admin)["transport_connections_refused"] < 4 and time.time() < deadline:
        time.sleep(0.05)
    after = status(admin)
    assert after["transport_connections_refused"] == before["transport_connections_refused"] + 4, after
    log = node.log_path.read_text()
    assert "certificate names 'alice'" in log and "says it is node 3 but its certificate names 'node-2'" in log
    # Nothing reached Raft: still the only voter, leading in the same term.
    assert (after["state"], after["term"], after["voters"]) == ("leader", before["term"], 1), after
    admin.close()
    node.stop()
