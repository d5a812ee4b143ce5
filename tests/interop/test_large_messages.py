"""Payloads up to the limit through every node of a 3-node cluster.

Found by a user (issue #11): with every Zenoh runtime on one worker thread, a
query of 64 KiB or more forwarded between routers blocked that worker in a
push waiting for queue space that only the same worker could free; Zenoh
closed the link after 5 s and the reply was lost. These tests put, publish
and consume payloads of 1 B, 64 KiB, 256 KiB and the maximum through every
node, each answered within a second; the cluster fixture fails a test whose
nodes logged a Zenoh transport error.
"""
import json
import os
import time

import pytest
import zenoh

from conftest import PREFIX

MAX_PAYLOAD_BYTES = 1024 * 1024  # mailboxd's default --max-payload-bytes
SIZES = [1, 64 * 1024, 256 * 1024, MAX_PAYLOAD_BYTES]
ANSWER_WITHIN_S = 1.0


def timed(fn, *args, **kwargs):
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


def size_name(size):
    return f"{size // 1024}k" if size >= 1024 else f"{size}b"


@pytest.mark.parametrize("size", SIZES, ids=size_name)
def test_acknowledged_put_and_consume_through_every_pair_of_nodes(cluster3, size):
    c, clients = cluster3
    box = f"big-{size_name(size)}"
    for i, putter in enumerate(clients):
        for j, taker in enumerate(clients):
            payload = os.urandom(size)
            msg_id, put_s = timed(putter.put_ack, box, payload)
            assert put_s < ANSWER_WITHIN_S, f"put of {size} B through node {i + 1} took {put_s:.3f} s"
            (kind, body), get_s = timed(taker.consume, box)
            assert kind == "ok", body
            assert get_s < ANSWER_WITHIN_S, f"consume of {size} B through node {j + 1} took {get_s:.3f} s"
            assert body["payload"] == payload and body["attachment"]["id"] == msg_id


@pytest.mark.parametrize("size", SIZES, ids=size_name)
def test_publications_through_every_node_are_stored(cluster3, size):
    c, clients = cluster3
    box = f"pub-{size_name(size)}"
    sent = []
    for client in clients:
        payload = os.urandom(size)
        client.session.put(f"{PREFIX}/{box}", payload, congestion_control=zenoh.CongestionControl.BLOCK)
        sent.append(payload)
    got = []
    for k in range(len(sent)):
        taker = clients[(k + 1) % len(clients)]
        (kind, body), took = timed(taker.consume, box, "wait=2s")
        assert kind == "ok", body
        assert took < ANSWER_WITHIN_S + 2, f"publication {k} of {size} B not stored in time"
        got.append(body["payload"])
    assert sorted(got) == sorted(sent)


@pytest.mark.parametrize("size", [64 * 1024, 256 * 1024], ids=size_name)
def test_a_batch_of_large_messages_through_a_follower(cluster3, size):
    c, clients = cluster3
    leader = c.leader(clients[0])
    follower = clients[next(i for i in (1, 2, 3) if i != leader) - 1]
    box = f"batch-{size_name(size)}"
    count = MAX_PAYLOAD_BYTES // size
    payloads = [os.urandom(size) for _ in range(count)]
    for p in payloads:
        follower.put_ack(box, p)
    (kind, body), took = timed(follower.consume, box, f"n={count}")
    assert kind == "ok", body
    assert took < ANSWER_WITHIN_S, f"batch of {count} x {size} B took {took:.3f} s"
    sizes = [m["size"] for m in body["attachment"]["messages"]]
    assert sizes == [size] * count and body["payload"] == b"".join(payloads)


def test_concurrent_large_puts_from_every_node_lose_no_reply(cluster3):
    """Several large queries in flight through each node at once, as many
    clients send them: every one answered, nothing lost."""
    c, clients = cluster3
    size = 256 * 1024
    per_client = 8
    pending = []
    for i, client in enumerate(clients):
        for k in range(per_client):
            pending.append((client, client.session.get(f"{PREFIX}/burst/put?rid=b{i}-{k}", payload=os.urandom(size),
                                                       timeout=10.0)))
    ids = set()
    for client, replies in pending:
        got = list(replies)
        assert len(got) == 1 and got[0].ok is not None, [r.err and r.err.payload.to_bytes() for r in got]
        ids.add(json.loads(got[0].ok.payload.to_bytes())["id"])
    assert len(ids) == len(pending)
    kind, body = clients[1].one(f"{PREFIX}/burst/stats")
    assert json.loads(body["payload"])["messages"] == len(pending)
