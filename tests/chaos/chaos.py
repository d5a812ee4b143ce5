#!/usr/bin/env python3
"""Black-box fault test: real mailboxd processes in network namespaces, a
nemesis, concurrent Zenoh clients recording a history, and a checker.

    sudo .venv/bin/python tests/chaos/chaos.py --nodes 3 --duration 60 --seed 7

Each node runs in its own network namespace (netns.py); partitions are real
packet drops. The nemesis (seeded schedule) partitions (majority/minority,
bridge, one-way, leader isolated), makes links lossy or slow, kills (-9) and
restarts nodes, and pauses them (SIGSTOP/SIGCONT). Clients connect to
different nodes (failing over to the others) and put, consume and peek on a
few mailboxes (and purge the first), and on lease mailboxes (--lease-mailboxes)
also consume with a short lease, ack some of those and abandon the rest (so
they come back, and after --max-deliveries 2 move to `<box>.dlq`), consume
and peek the dead letters and rarely redrive them; most operations carry a rid and are retried with it until
their outcome is known or their retry budget runs out, some have none and
are tried once; each is recorded once: call time, return time, outcome
(ok / fail / unknown) and value. After the schedule the network
is healed, every node is running, leases run out, the mailboxes and dead
letters are drained (recorded too),
replicas are compared, and `checker` (tools/checker, Porcupine) checks the
history for linearizability against a FIFO queue per mailbox (a lease
mailbox with its .dlq against the lease model) and accounts for every
acknowledged put. A node that exits by itself (a crash) fails the
run too. Exit status 0 only when nothing is wrong.

Everything of a run is kept in --out (history, node logs, checker report and,
on a violation, the checker's HTML timeline). Needs root and nftables.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zenoh

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MAILBOX_BUILD_DIR", ROOT / "build"))
PREFIX = "forge/mailbox"
ZENOH_PORT = 7447
RAFT_PORT = 7450
START_GRACE_S = 0.3  # a (re)started node must not exit within this (bad flags, bad data)
ATTEMPT_TIMEOUT_S = 4.0  # one query's Zenoh timeout
RETRY_BUDGET_S = 30.0  # an operation is retried (same rid) this long, then recorded as unknown/fail
DRAIN_BUDGET_S = 120.0  # healing, then draining every mailbox, must end within this


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Node:
    def __init__(self, net, i, data_dir, node_count, extra_args):
        self.net, self.i, self.data_dir = net, i, Path(data_dir)
        self.node_count = node_count
        self.extra_args = extra_args
        self.proc = None
        self.paused = False
        self.crashes = []  # exit statuses of runs that ended without the nemesis or the test ending them
        self.run_accounted = False  # the current run's end is known: ended on purpose, or its crash noted
        self.log_path = self.data_dir.parent / f"n{i}.log"

    @property
    def endpoint(self):
        return f"tcp/{self.net.address(self.i)}:{ZENOH_PORT}"

    def start(self, build_dir):
        self.check_crash()
        self.run_accounted = False
        args = [str(build_dir / "mailboxd"), "--node-id", str(self.i),
                "--listen", self.endpoint,
                "--raft-address", f"{self.net.address(self.i)}:{RAFT_PORT}",
                # Not loopback: open mode needs it forced (the test network is private).
                "--insecure",
                "--data-dir", str(self.data_dir), *self.extra_args]
        for j in range(1, self.node_count + 1):
            args += ["--peer", f"{j}={self.net.address(j)}:{RAFT_PORT}"]
        with open(self.log_path, "ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.net.ns_command(self.i) + args, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.paused = False
        # A node listens only once it can serve (it leads or knows the
        # leader), which a node restarted into a minority partition may not
        # for a while: wait only for it to open its data and start Raft.
        time.sleep(START_GRACE_S)
        if self.proc.poll() is not None:
            raise RuntimeError(f"node {self.i} exited with {self.proc.returncode}; see {self.log_path}")

    def wait_listening(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.i} exited with {self.proc.returncode}; see {self.log_path}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((self.net.address(self.i), ZENOH_PORT)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"node {self.i} did not listen; see {self.log_path}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_crash(self):
        """Records (once) a process that ended by itself (a crash)."""
        if self.proc is not None and not self.run_accounted and self.proc.poll() is not None:
            self.run_accounted = True
            self.crashes.append(self.proc.returncode)
            log(f"node {self.i} exited by itself with status {self.proc.returncode}; see {self.log_path}")

    def kill9(self):
        self.check_crash()
        if self.running():
            self.run_accounted = True
            self.proc.kill()
            self.proc.wait()

    def pause(self):
        if self.running() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.running() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        self.resume()
        self.check_crash()
        if self.running():
            self.run_accounted = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def open_session(endpoints):
    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("connect/endpoints", json.dumps(endpoints))
    conf.insert_json5("scouting/multicast/enabled", "false")
    deadline = time.time() + 30
    while True:
        try:
            return zenoh.open(conf)
        except zenoh.ZError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


class Recorder:
    """The history: one JSON object per operation (tools/checker/README.md)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.protocol_errors = []  # replies the contract forbids (contradicting replies, unknown codes)
        self.stats = {}  # counters of notable replies (approximate: updated from several threads)

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def protocol_error(self, text):
        with self.lock:
            self.protocol_errors.append(text)


# A share of the puts carry large payloads (issue #11: large messages between
# routers once stalled and lost replies): (probability, payload bytes).
# Share of the operations on the first mailbox that are purges (SPEC v2).
PURGE_SHARE = 0.01

# Lease mailboxes (lease0, ...; SPEC v1 leases, v2 dead letters and redrive):
# one lease duration for all (the checker needs it), short so that abandoned
# leases end within the run; nodes run with a low delivery limit so that
# abandoned messages reach the dead letters.
LEASE_MS = 1000
MAX_DELIVERIES = 2
LEASE_CLIENTS = 2  # clients 1..LEASE_CLIENTS also work on the lease mailboxes (the
#                   checker's lease model search is exponential in how many ops overlap)
LEASE_SHARE = 0.5  # share of those clients' operations that go to a lease mailbox
DLQ = ".dlq"
CHECKER_MEMORY_BYTES = 6 << 30  # address space allowed to the checker

LARGE_PUT_SIZES = [(0.04, 64 * 1024), (0.03, 256 * 1024), (0.01, 1024 * 1024)]


def payload_of(value):
    """The bytes put for `value`: the value itself, or for a large put
    (value ending in `L<size>`) the value, a `|` and padding up to size."""
    if "L" not in value:
        return value.encode()
    size = int(value.rsplit("L", 1)[1])
    head = value.encode() + b"|"
    return head + b"x" * (size - len(head))


def value_of(payload):
    """The value a payload carries; a large one whose size or padding is
    not what its value says is a protocol error (a corrupted message)."""
    text = payload.decode()
    if "|" not in text:
        return ("ok", text)
    value, pad = text.split("|", 1)
    if payload != payload_of(value) or pad.strip("x"):
        return ("protocol", f"corrupted large message {value}: {len(payload)} bytes")
    return ("ok", value)


def attachment_of(sample):
    att = sample.attachment
    if att is None:
        return None
    try:
        return json.loads(att.to_bytes())
    except Exception:
        return None


def classify(reply):
    """One reply as ('ok', text, attachment) | ('empty',) | ('not_found',)
    | ('unavailable',) | ('uncertain', why) | ('protocol', text)."""
    if reply.ok is not None:
        r = value_of(reply.ok.payload.to_bytes())
        return (*r, attachment_of(reply.ok)) if r[0] == "ok" else r
    try:
        err = json.loads(reply.err.payload.to_bytes())
        code = err["code"]
    except Exception:  # a Zenoh-level error (e.g. timeout) has no JSON payload
        return ("uncertain", f"error reply {reply.err.payload.to_bytes()[:80]!r}")
    if code == "empty":
        return ("empty",)
    if code == "not_found":
        return ("not_found",)
    if code == "unavailable":
        return ("unavailable", err.get("message", ""))
    if code == "unknown_outcome":
        return ("uncertain", "unknown_outcome")
    return ("protocol", f"unexpected error {err}")


def attempt(session, selector, payload, stats):
    """One query, as classify() describes. A query reaches one node (the
    one the client is connected to), which answers it once: two answers of
    the service are a protocol error. Zenoh's own errors (a timeout, from
    the client's session or a router on the way) may come beside it."""
    try:
        replies = list(session.get(selector, payload=payload, timeout=ATTEMPT_TIMEOUT_S))
    except zenoh.ZError as e:
        return ("uncertain", f"zenoh: {e}")
    if not replies:
        return ("uncertain", "no reply")
    results = [classify(r) for r in replies]
    if len(results) == 1:
        return results[0]
    stats["multiple_replies"] = stats.get("multiple_replies", 0) + 1
    answers = [r for r in results if not (r[0] == "uncertain" and r[1].startswith("error reply"))]
    if len(answers) > 1:
        return ("protocol", f"{time.strftime('%H:%M:%S')} {len(answers)} answers to {selector}: {results}")
    if answers:
        return answers[0]
    return ("uncertain", f"replies {results}")


def perform(session, rec, client_id, op, box, value, rid, stop_retrying, budget_s=RETRY_BUDGET_S,
            lease_ms=0, msg_id=None, n=0):
    """Runs one operation and records it. With a rid it is retried (same rid)
    until its outcome is known, `budget_s` runs out or `stop_retrying()`
    says so; without one (rid None) it is tried once, as a client without
    idempotency keys would. A consume with `lease_ms` takes a lease; an ack
    settles `msg_id` (whose payload was `value`); a redrive moves at most
    `n` (0: no limit). Returns (outcome, result, attachment)."""
    params = []
    if rid:
        params.append(f"rid={rid}")
    if op == "consume" and lease_ms:
        params.append(f"lease={lease_ms}ms")
    if op == "ack":
        params.append(f"id={msg_id}")
    if op == "redrive" and n:
        params.append(f"n={n}")
    query = ("?" + ";".join(params)) if params else ""
    if op == "put":
        selector, payload = f"{PREFIX}/{box}/put{query}", payload_of(value)
    elif op == "consume":
        selector, payload = f"{PREFIX}/{box}{query}", None
    elif op in ("purge", "ack", "redrive"):
        selector, payload = f"{PREFIX}/{box}/{op}{query}", None
    else:
        selector, payload = f"{PREFIX}/{box}/peek", None
    if rid is None and op != "peek":
        budget_s = 0
    call_ns = time.monotonic_ns()
    deadline = time.monotonic() + budget_s
    uncertain = False
    outcome, result, att = None, None, None
    extra = {}
    while True:
        r = attempt(session, selector, payload, rec.stats)
        if r[0] == "ok":
            outcome = "ok"
            result = value if op in ("put", "ack") else r[1]
            att = r[2]
            if op == "ack":
                extra["result"] = "acked"
            elif op == "redrive":
                try:
                    extra["moved"] = int(json.loads(r[1])["moved"])
                except Exception:
                    rec.protocol_error(f"client {client_id}: redrive reply {r[1]!r}")
                    outcome = "unknown"
            break
        if r[0] == "not_found" and op == "ack":
            outcome, result = "ok", value
            extra["result"] = "not_found"
            break
        if r[0] == "not_found":
            rec.protocol_error(f"client {client_id}: {op} got not_found: {selector}")
            uncertain = True
        if r[0] == "empty":
            if op in ("put", "purge", "ack", "redrive"):
                rec.protocol_error(f"{op} got empty: {selector}")
                outcome = "unknown"
                break
            outcome, result = "ok", None
            break
        if r[0] == "protocol":
            rec.protocol_error(f"client {client_id}: {r[1]}")
            uncertain = True
        elif r[0] == "uncertain":
            uncertain = True
        if time.monotonic() > deadline or stop_retrying():
            outcome = "unknown" if uncertain else "fail"
            result = value if op in ("put", "ack") else None
            break
        time.sleep(0.05 + random.random() * 0.15)
    if op == "consume" and lease_ms:
        extra["lease_ms"] = lease_ms
    if op in ("consume", "peek") and outcome == "ok" and result is not None and isinstance(att, dict):
        extra["id"] = str(att.get("id"))
        if "deliveries" in att:
            extra["deliveries"] = att["deliveries"]
    if op == "ack":
        extra["id"] = msg_id
    if op == "redrive" and n:
        extra["n"] = n
    rec.add({"client": client_id, "op": op, "mailbox": box, "value": result if op not in ("put", "ack") else value,
             "outcome": outcome, "call_ns": call_ns, "return_ns": time.monotonic_ns(),
             **({"rid": rid} if rid and op != "peek" else {}), **extra})
    return outcome, result, att


def lease_step(session, rec, client_id, rng, box, seq, rid, budget):
    """One operation of the lease workload on `box` (and `box`.dlq): a put,
    a consume with a lease (then, half the time, an ack after a short
    pause; otherwise the lease is abandoned), a consume without one, a
    peek, the same on the dead letters, or (rarely) a redrive."""
    roll = rng.random()
    if roll < 0.34:
        perform(session, rec, client_id, "put", box, f"c{client_id}-{seq}", rid, lambda: False, budget)
        return
    if roll < 0.86:
        target = box
        if roll >= 0.70:
            target = box + DLQ  # the dead letters: consumed (leased or not) and peeked like any mailbox
        kind = rng.random()
        if kind < 0.15:
            perform(session, rec, client_id, "peek", target, None, None, lambda: False, budget)
            return
        lease = LEASE_MS if kind < 0.7 else 0
        outcome, value, att = perform(session, rec, client_id, "consume", target, None, rid, lambda: False, budget,
                                      lease_ms=lease)
        if lease and outcome == "ok" and value is not None and isinstance(att, dict) and rng.random() < 0.5:
            time.sleep(rng.random() * 0.3)
            ack_rid = None if rid is None else f"{rid}-ack"
            perform(session, rec, client_id, "ack", target, value, ack_rid, lambda: False, budget,
                    msg_id=str(att.get("id")))
        return
    if roll < 0.88:
        n = rng.choice([0, 0, 1, 2, 3])
        perform(session, rec, client_id, "redrive", box, None, rid, lambda: False, budget, n=n)
        return
    # Rest: a pause, so the lease mailbox is not hammered (leases must end).
    time.sleep(rng.random() * 0.05)


def client_loop(client_id, endpoints, mailboxes, rec, stop, seed, lease_boxes=()):
    rng = random.Random(seed * 1000 + client_id)
    session = open_session(endpoints)
    seq = 0
    try:
        while not stop.is_set():
            seq += 1
            if lease_boxes and rng.random() < LEASE_SHARE:
                kind = rng.random()
                rid = None if kind < 0.15 else f"k{client_id}-{seq}"
                budget = 1.5 if kind > 0.9 else RETRY_BUDGET_S
                lease_step(session, rec, client_id, rng, rng.choice(lease_boxes), seq, rid, budget)
                time.sleep(rng.random() * 0.02)
                continue
            box = rng.choice(mailboxes)
            roll = rng.random()
            # Slightly more consumes than puts: mailboxes hover near empty.
            op = "put" if roll < 0.42 else ("consume" if roll < 0.87 else "peek")
            # SPEC v2: rare purges, in the first mailbox only (the checker
            # searches a mailbox with purges without its pruning).
            if box == mailboxes[0] and rng.random() < PURGE_SHARE:
                op = "purge"
            kind = rng.random()
            # Most operations carry a rid and are retried until settled; some
            # give up early (unknown outcomes stay in the history); some have
            # no rid and are tried once.
            rid = None if kind < 0.15 else f"k{client_id}-{seq}"
            budget = 1.5 if kind > 0.9 else RETRY_BUDGET_S
            value = f"c{client_id}-{seq}" if op == "put" else None
            if op == "put":
                size_roll = rng.random()
                for share, size in LARGE_PUT_SIZES:
                    if size_roll < share:
                        value += f"L{size}"
                        break
                    size_roll -= share
            perform(session, rec, client_id, op, box, value, rid, lambda: False, budget)
            time.sleep(rng.random() * 0.02)
    finally:
        session.close()


# ---- nemesis ----
class Nemesis:
    def __init__(self, net, nodes, build_dir, rng, status_session):
        self.net, self.nodes, self.build_dir, self.rng = net, nodes, build_dir, rng
        self.status_session = status_session
        self.events = []  # (time, text) of every fault, for the report

    def note(self, text):
        self.events.append((time.strftime("%H:%M:%S"), text))
        log(f"nemesis: {text}")

    def leader(self):
        try:
            replies = self.status_session.get(f"{PREFIX}/@cluster/node/*/status",
                                              target=zenoh.QueryTarget.ALL,
                                              consolidation=zenoh.ConsolidationMode.NONE, timeout=2)
            for r in replies:
                if r.ok is not None:
                    st = json.loads(r.ok.payload.to_bytes())
                    if st.get("state") == "leader":
                        return st["id"]
        except zenoh.ZError:
            pass
        return None

    def random_split(self):
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        minority = ids[: (len(ids) - 1) // 2]
        return ids[len(minority):], minority

    def inject(self):
        """One fault; returns a function that undoes it."""
        ids = sorted(self.nodes)
        kinds = ["majority", "leader-isolated", "bridge", "one-way", "kill", "kill-leader", "pause",
                 "pause-leader", "lossy", "slow", "kill-and-partition"]
        kind = self.rng.choice(kinds)
        if kind == "majority":
            major, minor = self.random_split()
            self.net.partition([major, minor])
            self.note(f"partition {sorted(major)} | {sorted(minor)}")
            return self.net.heal
        if kind == "leader-isolated":
            lead = self.leader() or self.rng.choice(ids)
            self.net.partition([[lead], [i for i in ids if i != lead]])
            self.note(f"partition leader {lead} from the rest")
            return self.net.heal
        if kind == "bridge":
            order = ids[:]
            self.rng.shuffle(order)
            mid = len(order) // 2
            left, bridge, right = order[:mid], order[mid], order[mid + 1:]
            self.net.partition([left, right])  # the bridge node sees both sides
            self.note(f"bridge: {sorted(left)} | {sorted(right)}, {bridge} sees both")
            return self.net.heal
        if kind == "one-way":
            src = self.leader() if self.rng.random() < 0.5 else None
            src = src or self.rng.choice(ids)
            self.net.cut([(src, j) for j in ids if j != src])
            self.note(f"one-way: packets from {src} to everyone dropped")
            return self.net.heal
        if kind in ("kill", "kill-leader"):
            victim = (self.leader() if kind == "kill-leader" else None) or self.rng.choice(ids)
            self.nodes[victim].kill9()
            self.note(f"kill -9 node {victim}")
            return lambda: (self.nodes[victim].start(self.build_dir), self.note(f"restart node {victim}"))
        if kind in ("pause", "pause-leader"):
            victim = (self.leader() if kind == "pause-leader" else None) or self.rng.choice(ids)
            self.nodes[victim].pause()
            self.note(f"SIGSTOP node {victim}")
            return lambda: (self.nodes[victim].resume(), self.note(f"SIGCONT node {victim}"))
        if kind == "lossy":
            victims = self.rng.sample(ids, 2)
            pct = self.rng.choice([10, 30, 50])
            for v in victims:
                self.net.make_lossy(v, pct)
            self.note(f"lossy: {pct}% of packets from {sorted(victims)} to other nodes dropped")
            return self.net.heal
        if kind == "slow":
            victim = self.rng.choice(ids)
            self.net.make_slow(victim, rate_kbit=self.rng.choice([500, 2000]), latency_ms=200)
            self.note(f"slow link on node {victim}")
            return self.net.heal
        # kill-and-partition: a node dies while the rest is split around it
        victim = self.rng.choice(ids)
        self.nodes[victim].kill9()
        others = [i for i in ids if i != victim]
        self.rng.shuffle(others)
        cut_off = others[:1] if len(ids) == 5 else []
        if cut_off:
            self.net.partition([[victim] + cut_off, [i for i in ids if i not in cut_off and i != victim]])
        self.note(f"kill -9 node {victim}" + (f", partition {cut_off} away" if cut_off else ""))

        def undo():
            self.net.heal()
            self.nodes[victim].start(self.build_dir)
            self.note(f"heal, restart node {victim}")
        return undo


def cluster_statuses(session):
    out = {}
    try:
        for r in session.get(f"{PREFIX}/@cluster/node/*/status", target=zenoh.QueryTarget.ALL,
                             consolidation=zenoh.ConsolidationMode.NONE, timeout=3):
            if r.ok is not None:
                st = json.loads(r.ok.payload.to_bytes())
                out[st["id"]] = st
    except zenoh.ZError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    ap.add_argument("--duration", type=float, default=60, help="seconds of faults and load")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--mailboxes", type=int, default=3)
    ap.add_argument("--lease-mailboxes", type=int, default=1,
                    help="mailboxes with the lease workload (leases, acks, dead letters, redrive); 0 for none")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="directory for the history, logs and reports")
    ap.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    ap.add_argument("--checker", type=Path, default=None, help="checker binary (default: <build-dir>/mailbox-checker)")
    ap.add_argument("--fault-seconds", type=float, nargs=2, default=(2.0, 7.0))
    ap.add_argument("--quiet-seconds", type=float, nargs=2, default=(1.0, 4.0))
    ap.add_argument("--snapshot-threshold", type=int, default=300,
                    help="small, so snapshots and snapshot installs happen during the run")
    ap.add_argument("--keep", action="store_true", help="keep --out even when everything passed")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("chaos: needs root (network namespaces, nftables)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"mailbox-chaos-{seed}-"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    checker = args.checker or args.build_dir / "mailbox-checker"
    if not checker.exists():
        sys.exit(f"chaos: no checker at {checker} (cmake --build {args.build_dir} --target checker)")
    replay = (f"sudo .venv/bin/python tests/chaos/chaos.py --nodes {args.nodes} --duration {args.duration:g} "
              f"--clients {args.clients} --mailboxes {args.mailboxes} --lease-mailboxes {args.lease_mailboxes} --seed {seed}")
    log(f"seed {seed}, {args.nodes} nodes, {args.duration:g} s, {args.clients} clients, output in {out}")

    rng = random.Random(seed)
    net = netns.Network(args.nodes)
    net.setup()
    node_args = ["--snapshot-threshold", str(args.snapshot_threshold), "--snapshot-trailing", "64"]
    if args.lease_mailboxes:
        node_args += ["--max-deliveries", str(MAX_DELIVERIES)]
    nodes = {i: Node(net, i, out / f"n{i}", args.nodes, node_args) for i in range(1, args.nodes + 1)}
    rec = Recorder()
    stop = threading.Event()
    threads = []
    anomalies = []
    status_session = None
    nemesis = Nemesis(net, nodes, args.build_dir, rng, None)
    try:
        for n in nodes.values():
            n.start(args.build_dir)
        for n in nodes.values():
            n.wait_listening()
        all_endpoints = [n.endpoint for n in nodes.values()]
        status_session = open_session(all_endpoints)
        deadline = time.time() + 30
        while not any(s.get("state") == "leader" for s in cluster_statuses(status_session).values()):
            if time.time() > deadline:
                raise RuntimeError("no leader elected")
            time.sleep(0.2)
        mailboxes = [f"chaos{k}" for k in range(args.mailboxes)]
        lease_boxes = [f"lease{k}" for k in range(args.lease_mailboxes)]
        for c in range(1, args.clients + 1):
            first = (c - 1) % args.nodes + 1
            endpoints = [nodes[first].endpoint] + [nodes[j].endpoint for j in nodes if j != first]
            t = threading.Thread(target=client_loop,
                                 args=(c, endpoints, mailboxes, rec, stop, seed, lease_boxes if c <= LEASE_CLIENTS else ()),
                                 daemon=True)
            t.start()
            threads.append(t)

        nemesis.status_session = status_session
        end = time.time() + args.duration
        time.sleep(min(3.0, args.duration / 10))
        while time.time() < end:
            for n in nodes.values():
                n.check_crash()
            undo = nemesis.inject()
            time.sleep(min(rng.uniform(*args.fault_seconds), max(0.0, end - time.time())))
            undo()
            time.sleep(rng.uniform(*args.quiet_seconds))
        log("schedule over: healing, every node running")
        net.heal()
        for n in nodes.values():
            n.resume()
            n.check_crash()
            if not n.running():
                n.start(args.build_dir)
        stop.set()
        for t in threads:
            t.join(timeout=RETRY_BUDGET_S + 2 * ATTEMPT_TIMEOUT_S + 5)
            if t.is_alive():
                anomalies.append("a client did not finish its last operation")

        log("draining")
        drain_session = open_session(all_endpoints)
        drain_deadline = time.monotonic() + DRAIN_BUDGET_S
        seq = 0

        def drain(box):
            nonlocal seq
            while time.monotonic() < drain_deadline:
                seq += 1
                outcome, result, _ = perform(drain_session, rec, 0, "consume", box, None, f"drain-{seq}",
                                             lambda: time.monotonic() > drain_deadline)
                if outcome == "ok" and result is None:
                    return True
            anomalies.append(f"could not drain {box} within {DRAIN_BUDGET_S:g} s")
            return False

        for box in mailboxes:
            drain(box)
        if lease_boxes:
            # Every lease taken ends within LEASE_MS of its consume (the
            # last returned before the clients stopped); a lease ending at
            # the delivery limit moves to the .dlq at the next sweep
            # (100 ms). Then drain each mailbox and its dead letters until
            # both hold nothing, leased or not.
            time.sleep(LEASE_MS / 1000 + 0.5)
            for box in lease_boxes:
                while time.monotonic() < drain_deadline:
                    if not (drain(box) and drain(box + DLQ)):
                        break
                    held = 0
                    for b in (box, box + DLQ):
                        try:
                            for r in drain_session.get(f"{PREFIX}/{b}/stats", timeout=ATTEMPT_TIMEOUT_S):
                                if r.ok is not None:
                                    held += json.loads(r.ok.payload.to_bytes())["messages"]
                                else:
                                    held += 1  # no answer: look again
                        except zenoh.ZError:
                            held += 1
                    if held == 0:
                        break
                    time.sleep(0.3)
        drain_session.close()

        # Replicas: every node reaches the same applied index with no message left.
        deadline = time.time() + 30
        while True:
            st = cluster_statuses(status_session)
            applied = {i: s["applied_index"] for i, s in st.items()}
            pending = {i: s["messages"] for i, s in st.items()}
            if len(st) == args.nodes and len(set(applied.values())) == 1 and set(pending.values()) == {0}:
                log(f"replicas agree: applied index {next(iter(applied.values()))}, no message left")
                break
            if time.time() > deadline:
                anomalies.append(f"replicas disagree after healing: applied {applied}, messages {pending}")
                # Where the messages are (the list form of stats, SPEC v2).
                try:
                    held = []
                    for r in status_session.get(f"{PREFIX}/*/stats?limit=50", timeout=5):
                        if r.ok is not None:
                            held.append(json.loads(r.ok.payload.to_bytes()))
                    log(f"mailboxes holding messages: {held}")
                    (out / "left.json").write_text(json.dumps(held, indent=2) + "\n")
                except Exception as e:  # diagnostics only
                    log(f"listing the mailboxes failed: {e}")
                break
            time.sleep(0.5)
    finally:
        stop.set()
        if status_session is not None:
            status_session.close()
        for n in nodes.values():
            n.stop()
        net.teardown()

    history = out / "history.jsonl"
    with open(history, "w") as f:
        for op in sorted(rec.ops, key=lambda o: o["call_ns"]):
            f.write(json.dumps(op) + "\n")
    (out / "nemesis.txt").write_text("".join(f"{t} {e}\n" for t, e in nemesis.events))
    counts = {}
    for op in rec.ops:
        key = f"{op['op']} {op['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    log(f"{len(rec.ops)} operations: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    log(f"{len(nemesis.events)} nemesis events")
    anomalies += rec.protocol_errors
    for n in nodes.values():
        if n.crashes:
            anomalies.append(f"node {n.i} crashed (exit statuses {n.crashes}; see {n.log_path})")
    if rec.stats:
        log(f"reply counters: {rec.stats}")

    def cap_memory():
        # The search can blow up on a history with many overlapping ops (a
        # lease mailbox's model branches on lease ends): fail the run
        # rather than the shared machine.
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (CHECKER_MEMORY_BYTES, CHECKER_MEMORY_BYTES))

    r = subprocess.run([str(checker), "--json", str(out / "checker.json"), "--html", str(out / "history.html"),
                        "--max-deliveries", str(MAX_DELIVERIES), str(history)], capture_output=True, text=True,
                       preexec_fn=cap_memory)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        anomalies.append(f"checker exit status {r.returncode}")
    summary = {"seed": seed, "nodes": args.nodes, "duration_s": args.duration, "clients": args.clients,
               "operations": len(rec.ops), "by_kind": counts, "reply_counters": rec.stats, "nemesis_events": len(nemesis.events),
               "anomalies": anomalies, "checker_exit": r.returncode}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if anomalies:
        log("FAILED: " + "; ".join(anomalies))
        log(f"everything is in {out}; replay the schedule with: {replay}")
        sys.exit(1)
    log(f"passed (seed {seed})")
    if not args.keep and args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
