"""Regression tests for what the chaos test found, on real partitions
(network namespaces; needs root and nftables, like chaos.py)."""
import json
import time

import pytest
import zenoh

import chaos
import netns


@pytest.fixture
def cluster3(tmp_path):
    net = netns.Network(3, prefix="mbxr")
    net.setup()
    nodes = {i: chaos.Node(net, i, tmp_path / f"n{i}", 3, []) for i in (1, 2, 3)}
    try:
        for n in nodes.values():
            n.start(chaos.BUILD_DIR)
        for n in nodes.values():
            n.wait_listening()
        yield net, nodes
    finally:
        for n in nodes.values():
            n.stop()
        net.teardown()


def replies_of(session, selector, payload=None):
    out = []
    for r in session.get(selector, payload=payload, timeout=5):
        if r.ok is not None:
            out.append(("ok", r.ok.payload.to_bytes()))
        else:
            raw = r.err.payload.to_bytes()
            try:
                out.append(("err", json.loads(raw)["code"]))
            except ValueError:  # Zenoh's own error (e.g. a timeout), not the service's
                out.append(("err", "zenoh: " + raw.decode(errors="replace")))
    return out


def wait_settled(session, nodes, timeout=20):
    """Waits until every node answers its status (through the node the
    session reached, over the Raft transport) and knows the one leader."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = chaos.cluster_statuses(session)
        leaders = [s["id"] for s in st.values() if s["state"] == "leader"]
        if len(st) == len(nodes) and len(leaders) == 1 and all(s["leader"] == leaders[0] for s in st.values()):
            return leaders[0]
        time.sleep(0.1)
    raise AssertionError(f"the cluster did not settle: {chaos.cluster_statuses(session)}")


def test_a_node_cut_off_from_the_leaders_raft_traffic_never_answers_unavailable_for_it(cluster3):
    """Found by chaos seed 1 (when the nodes' routers were meshed and every
    node received every query): packets from the leader to one follower are
    dropped; that follower, knowing no leader, answered `unavailable` to
    queries the leader acted on: two replies, one of them claiming nothing
    was applied. A client of the third node must get exactly one answer."""
    net, nodes = cluster3
    status = chaos.open_session([n.endpoint for n in nodes.values()])
    leader = wait_settled(status, nodes)
    others = [i for i in nodes if i != leader]
    isolated, via = others
    net.cut([(leader, isolated)])
    time.sleep(4)  # the isolated follower's election timeout passes: it knows no leader
    client = chaos.open_session([nodes[via].endpoint])
    try:
        contradictions = []
        for k in range(40):
            got = replies_of(client, f"{chaos.PREFIX}/regress/put?rid=r{k}", payload=f"v{k}".encode())
            kinds = {kind if kind == "ok" else code for kind, code in got}
            if ("ok" in kinds and "unavailable" in kinds) or len(got) != 1:
                contradictions.append(got)
            time.sleep(0.05)
        assert not contradictions, f"acted on and answered unavailable: {contradictions[:3]}"
    finally:
        client.close()
        status.close()
