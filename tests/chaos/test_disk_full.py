"""A node's disk fills up (issue 12): each node's data directory is a small
tmpfs; a filler file takes the space that is left. Acknowledged puts are
refused with a clear `unavailable` while no leader can write, nothing
acknowledged is lost, and the service is back once space returns. Needs
root (mount), like the rest of tests/chaos."""
import json
import os
import subprocess
import time

import pytest

import chaos
import netns

TMPFS_MIB = 48
SEGMENT_BYTES = 1 << 20  # small segments: the prepared ones run out quickly
PAYLOAD = b"d" * (64 * 1024)


def mount_tmpfs(path, mib):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)], check=True)


def fill(path):
    """Takes every free byte of the filesystem holding `path`."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def put(session, box, rid, payload=PAYLOAD):
    """One acknowledged put: ("ok", id) or ("err", code, message)."""
    got = []
    for r in session.get(f"{chaos.PREFIX}/{box}/put?rid={rid}", payload=payload, timeout=10):
        if r.ok is not None:
            got.append(("ok", json.loads(r.ok.payload.to_bytes())["id"]))
        else:
            raw = r.err.payload.to_bytes()
            try:
                body = json.loads(raw)
                got.append(("err", body["code"], body["message"]))
            except ValueError:
                got.append(("err", "zenoh", raw.decode(errors="replace")))
    assert len(got) == 1, f"one answer per query, got {got}"
    return got[0]


def drain(session, box):
    ids = []
    while True:
        replies = list(session.get(f"{chaos.PREFIX}/{box}", timeout=10))
        oks = [r for r in replies if r.ok is not None]
        if not oks:
            err = json.loads(replies[0].err.payload.to_bytes())
            assert err["code"] == "empty", err
            return ids
        for r in oks:
            ids.append(json.loads(bytes(r.ok.attachment.to_bytes()))["id"])


def assert_exactly_once(session, box, acked):
    """Drains `box`: every acknowledged put is there, none twice."""
    got = drain(session, box)
    missing = set(acked) - set(got)
    assert not missing, f"acknowledged puts lost: {sorted(missing)[:10]}"
    assert len(got) == len(set(got)), "a message delivered twice"


@pytest.fixture
def tmpfs_cluster(tmp_path):
    """Yields a function starting an n-node cluster on tmpfs data dirs."""
    mounts, started = [], []

    def start(node_count):
        net = netns.Network(node_count, prefix="mbxd")
        net.setup()
        started.append(net)
        nodes = {}
        for i in range(1, node_count + 1):
            d = tmp_path / f"n{i}"
            mount_tmpfs(d, TMPFS_MIB)
            mounts.append(d)
            nodes[i] = chaos.Node(net, i, d / "data", node_count, ["--log-segment-bytes", str(SEGMENT_BYTES)])
            # The node's log lives beside the mount, not in it.
            nodes[i].log_path = tmp_path / f"n{i}.log"
        for n in nodes.values():
            n.start(chaos.BUILD_DIR)
        for n in nodes.values():
            n.wait_listening()
        started.append(nodes)
        return net, nodes

    yield start
    for item in started:
        if isinstance(item, dict):
            for n in item.values():
                n.stop()
    for item in started:
        if not isinstance(item, dict):
            item.teardown()
    for d in mounts:
        subprocess.run(["umount", "-l", str(d)], check=False)


def leader_of(session, count, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = chaos.cluster_statuses(session)
        leaders = [s["id"] for s in st.values() if s["state"] == "leader"]
        if len(st) == count and len(leaders) == 1:
            return leaders[0], st
        time.sleep(0.2)
    raise AssertionError(f"no single leader: {chaos.cluster_statuses(session)}")


def test_a_single_node_on_a_full_disk_refuses_puts_clearly_and_recovers(tmpfs_cluster):
    net, nodes = tmpfs_cluster(1)
    session = chaos.open_session([nodes[1].endpoint])
    try:
        acked = []
        for k in range(5):
            r = put(session, "full", f"a{k}")
            assert r[0] == "ok", r
            acked.append(r[1])
        filler = fill(nodes[1].data_dir.parent)
        refusals, k = [], 0
        # The prepared segments take some writes yet; then every put is refused.
        deadline = time.time() + 60
        while len(refusals) < 5 and time.time() < deadline:
            r = put(session, "full", f"b{k}")
            k += 1
            if r[0] == "ok":
                acked.append(r[1])
            else:
                assert r[1] in ("unavailable", "unknown_outcome"), r
                if r[1] == "unavailable":
                    refusals.append(r)
        assert len(refusals) >= 5, "a full disk must refuse puts"
        assert any("disk is full" in r[2] for r in refusals), refusals
        deadline = time.time() + 5  # the status is refreshed periodically
        while True:
            st = chaos.cluster_statuses(session)[1]
            if st["log_disk_full"] is True and st["refused_disk_full"] > 0:
                break
            assert time.time() < deadline, st
            time.sleep(0.2)
        # Space comes back: puts work again, nothing acknowledged was lost.
        os.remove(filler)
        deadline = time.time() + 30
        while True:
            r = put(session, "full", f"c{k}")
            k += 1
            if r[0] == "ok":
                acked.append(r[1])
                break
            assert time.time() < deadline, f"the node did not recover once space returned: {r}"
            time.sleep(0.3)
        assert_exactly_once(session, "full", acked)
    finally:
        session.close()


def test_a_leader_on_a_full_disk_hands_leadership_to_a_node_with_space(tmpfs_cluster):
    net, nodes = tmpfs_cluster(3)
    status = chaos.open_session([n.endpoint for n in nodes.values()])
    try:
        leader, _ = leader_of(status, 3)
        via = next(i for i in nodes if i != leader)
        client = chaos.open_session([nodes[via].endpoint])
        acked = []
        filler = fill(nodes[leader].data_dir.parent)
        # Puts through a follower go on: refused at worst while the leader
        # hands off, never unanswered.
        deadline, k, new_leader = time.time() + 20, 0, leader
        while new_leader == leader:
            assert time.time() < deadline, f"leadership stayed on the full disk: {chaos.cluster_statuses(status)}"
            r = put(client, "moved", f"m{k}")
            k += 1
            if r[0] == "ok":
                acked.append(r[1])
            else:
                assert r[1] in ("unavailable", "unknown_outcome"), r
            if k % 10 == 0:
                new_leader, st = leader_of(status, 3)
        assert st[leader]["log_disk_full"] is True and st[leader]["disk_full_transfers"] >= 1, st[leader]
        # Served by the new leader while the old one's disk is still full.
        for j in range(20):
            r = put(client, "moved", f"n{j}")
            if r[0] != "ok" and j < 5:  # the client's node may learn of the new leader a moment late
                assert r[1] == "unavailable", r
                time.sleep(0.5)
                continue
            assert r[0] == "ok", f"not served after the handoff: {r}"
            acked.append(r[1])
        # Space returns on the old leader; it catches up; nothing lost.
        os.remove(filler)
        deadline = time.time() + 60
        while True:
            st = chaos.cluster_statuses(status)
            if len(st) == 3 and not st[leader]["log_disk_full"] and \
                    st[leader]["applied_index"] >= st[new_leader]["commit_index"]:
                break
            assert time.time() < deadline, f"the old leader did not catch up: {st}"
            time.sleep(0.5)
        assert_exactly_once(client, "moved", acked)
        client.close()
    finally:
        status.close()
