"""Table-driven: every parameter with bad values, wildcards, empty names,
missing payloads. Each gets its error code, and nothing changes."""
import json

import pytest

from conftest import PREFIX

BOX = "guarded"

# (selector relative to PREFIX, payload, expected code)
BAD = [
    # names and operations
    ("*", None, "invalid_argument"),
    ("**", None, "invalid_argument"),
    ("gua$*", None, "invalid_argument"),
    (f"{BOX}/*", None, "invalid_argument"),
    (f"{BOX}/**", None, "invalid_argument"),
    (".hidden", None, "invalid_argument"),
    ("a b", None, "invalid_argument"),
    ("x" * 129, None, "invalid_argument"),
    (f"{BOX}/frobnicate", None, "invalid_argument"),
    (f"{BOX}/consume/more", None, "invalid_argument"),
    (f"{BOX}/CONSUME", None, "invalid_argument"),
    # n
    (f"{BOX}?n=0", None, "invalid_argument"),
    (f"{BOX}?n=-1", None, "invalid_argument"),
    (f"{BOX}?n=1001", None, "invalid_argument"),
    (f"{BOX}?n=99999999999999999999999", None, "invalid_argument"),
    (f"{BOX}?n=abc", None, "invalid_argument"),
    (f"{BOX}?n=", None, "invalid_argument"),
    (f"{BOX}?n=1;n=2", None, "invalid_argument"),
    (f"{BOX}/peek?n=0", None, "invalid_argument"),
    # wait
    (f"{BOX}?wait=-1s", None, "invalid_argument"),
    (f"{BOX}?wait=abc", None, "invalid_argument"),
    (f"{BOX}?wait=1.5s", None, "invalid_argument"),
    (f"{BOX}?wait=1d", None, "invalid_argument"),
    (f"{BOX}?wait=6m", None, "invalid_argument"),
    (f"{BOX}?wait=99999999999999999999h", None, "invalid_argument"),
    (f"{BOX}?wait=1s;wait=2s", None, "invalid_argument"),
    (f"{BOX}/peek?wait=", None, "invalid_argument"),
    # lease
    (f"{BOX}?lease=0", None, "invalid_argument"),
    (f"{BOX}?lease=-5s", None, "invalid_argument"),
    (f"{BOX}?lease=13h", None, "invalid_argument"),
    (f"{BOX}?lease=x", None, "invalid_argument"),
    (f"{BOX}/peek?lease=5s", None, "invalid_argument"),
    # rid
    (f"{BOX}?rid=", None, "invalid_argument"),
    (f"{BOX}?rid=" + "r" * 129, None, "invalid_argument"),
    (f"{BOX}?rid=a;rid=b", None, "invalid_argument"),
    (f"{BOX}/peek?rid=a", None, "invalid_argument"),
    # ttl and put
    (f"{BOX}/put?ttl=0", b"p", "invalid_argument"),
    (f"{BOX}/put?ttl=-1s", b"p", "invalid_argument"),
    (f"{BOX}/put?ttl=9999h", b"p", "invalid_argument"),
    (f"{BOX}/put?ttl=soon", b"p", "invalid_argument"),
    (f"{BOX}/put?ttl=1s;ttl=2s", b"p", "invalid_argument"),
    (f"{BOX}/put?n=1", b"p", "invalid_argument"),
    (f"{BOX}/put?lease=1s", b"p", "invalid_argument"),
    (f"{BOX}/put", None, "invalid_argument"),
    (f"{BOX}/put?colour=red", b"p", "invalid_argument"),
    (f"{BOX}?ttl=1s", None, "invalid_argument"),
    # payload where none belongs
    (f"{BOX}", b"unexpected", "invalid_argument"),
    (f"{BOX}/peek", b"unexpected", "invalid_argument"),
    (f"{BOX}/stats", b"unexpected", "invalid_argument"),
    # ack / nack
    (f"{BOX}/ack", None, "invalid_argument"),
    (f"{BOX}/ack?id=", None, "invalid_argument"),
    (f"{BOX}/ack?id=0", None, "invalid_argument"),
    (f"{BOX}/ack?id=-3", None, "invalid_argument"),
    (f"{BOX}/ack?id=abc", None, "invalid_argument"),
    (f"{BOX}/ack?id=1;id=2", None, "invalid_argument"),
    (f"{BOX}/nack", None, "invalid_argument"),
    (f"{BOX}/nack?id=1;n=2", None, "invalid_argument"),
    (f"{BOX}/ack?id=123456789", None, "not_found"),
    (f"{BOX}/nack?id=123456789", None, "not_found"),
    # stats takes nothing
    (f"{BOX}/stats?n=1", None, "invalid_argument"),
    # unknown parameters
    (f"{BOX}?colour=red", None, "invalid_argument"),
    (f"{BOX}?_time=[..]", None, "invalid_argument"),
]


@pytest.fixture
def guarded(client):
    client.put_ack(BOX, b"keep-1")
    client.put_ack(BOX, b"keep-2")
    return client


def snapshot(client):
    kind, body = client.one(f"{PREFIX}/{BOX}/peek?n=1000")
    assert kind == "ok"
    kind, st = client.one(f"{PREFIX}/{BOX}/stats")
    return body["attachment"], json.loads(st["payload"])


def test_every_bad_input_gets_its_code_and_changes_nothing(guarded):
    before = snapshot(guarded)
    failures = []
    for selector, payload, code in BAD:
        replies = guarded.query(f"{PREFIX}/{selector}", payload=payload)
        if len(replies) != 1 or replies[0][0] != "err" or replies[0][1].get("code") != code \
                or not replies[0][1].get("message"):
            failures.append((selector, payload, code, replies))
    assert not failures, "\n".join(map(repr, failures))
    after = snapshot(guarded)
    assert before[0]["messages"] == after[0]["messages"]
    assert before[1]["messages"] == after[1]["messages"] == 2
    assert before[1]["bytes"] == after[1]["bytes"]
