#!/usr/bin/env python3
"""`make bench`: mailbox and its peers side by side on this machine.

For each system and topology the suite starts the servers itself on
loopback (data under --work-dir), runs each scenario with the system's own
load tool, parses what the tool reports, stops the servers, and writes
bench-results/results.json and bench-results/chart.png (throughput and p99
latency per system and scenario), plus results.md (the same as a table).

Scenarios: 1 KiB messages, acknowledged put + consume, closed loop (one
operation in flight per client), 1 producer + 1 consumer and 16 + 16, on one
node and on a 3-node loopback cluster. Clients connect to node 1.

Systems:
  mailbox              build/mailboxd, load from `build/mailbox bench`
  nats-always          JetStream WorkQueue stream on file storage, nats-server
                       with `sync_interval: always` (an ack means fsynced)
  nats-default         the same server with its default (fsync every 2 min)
  nats-debian-default  Debian's nats-server 2.9 (no sync_interval), default
  rabbitmq-quorum      Debian's RabbitMQ, a quorum queue, PerfTest with
                       publisher confirms and manual acks

Physical context in the same report: fdatasync latency of 4 KiB appends in
the work dir, and the Zenoh query round trip through our bridge
(build/zenoh-rtt).

Durations: BENCH_DURATION_S (15) measured after BENCH_WARMUP_S (3), or
--duration/--warmup; --quick is 3 s after 1 s. --only mailbox,nats-always
runs some systems; --topology single runs one topology.

Repeats: --repeat N (BENCH_REPEAT, 1) runs N rounds; each round runs every
topology and, within it, every system in an order rotated by one each
round, so the systems are interleaved and no system always runs first on
a warm or cold machine. results.md then opens with the medians over the
rounds, each with its min-max spread, and the ratio of mailbox to the best
peer of equal durability (nats-always, rabbitmq-quorum: an acknowledgement
means fsynced), computed round by round: its median and spread.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(os.environ.get("MAILBOX_TOOLS_DIR", Path.home() / ".cache" / "mailbox" / "tools"))
NATS_CLI = TOOLS / "bin" / "nats"
NATS_SERVER_GO = TOOLS / "bin" / "nats-server"
NATS_SERVER_DEBIAN = Path("/usr/sbin/nats-server")
PERFTEST_LIB = TOOLS / "perftest" / "lib"
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
EPMD = Path("/usr/lib/erlang/bin/epmd")

SYSTEMS = ["mailbox", "nats-always", "nats-default", "nats-debian-default", "rabbitmq-quorum"]
TOPOLOGIES = {"single": 1, "cluster3": 3}
SCENARIOS = [(1, 1), (16, 16)]
MESSAGE_BYTES = 1024

# Loopback ports, away from the defaults of every system (mailbox 7447,
# NATS 4222/6222, AMQP 5672, epmd 4369).
PORTS = {
    "mailbox_zenoh": 17600,  # +i
    "mailbox_raft": 17610,  # +i
    "nats_client": 17620,  # +i
    "nats_cluster": 17630,  # +i
    "amqp": 17640,  # +i
    "rabbit_dist": 17650,  # +i
    "epmd": 17660,
    "zenoh_rtt": 17670,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failure(Exception):
    pass


# ---------------------------------------------------------------- processes

class Procs:
    """Every server process the suite started, so each is stopped by its id."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log_path: Path, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
        proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        out.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in list(reversed(self.procs)):
            self.stop(proc)


PROCS = Procs()


def run(argv: list, timeout: float, env: dict | None = None, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                         env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise Failure(f"{' '.join(str(a) for a in argv[:4])}... exited {res.returncode}: "
                      f"{(res.stderr or res.stdout).strip()[-600:]}")
    return res


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def require_free(ports: list[int]) -> None:
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise Failure(f"loopback ports in use: {busy} (a previous run still going?)")


def wait_until(what: str, check, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last = exc
        time.sleep(interval)
    raise Failure(f"timed out waiting for {what}" + (f": {last}" if last else ""))


def version_of(argv: list) -> str:
    try:
        res = run(argv, timeout=20, check=False)
        return (res.stdout or res.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001
        return "unknown"


def deb_version(pkg: str) -> str:
    res = run(["dpkg-query", "-W", "-f=${Version}", pkg], timeout=10, check=False)
    return res.stdout.strip() or "not installed"


# ---------------------------------------------------------------- physical context

def fsync_latency(work: Path, count: int = 500) -> dict:
    """4 KiB appends, each followed by fdatasync, in the work dir's file system."""
    path = work / "fsync-probe"
    block = os.urandom(4096)
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(20):
            os.write(fd, block)
            os.fdatasync(fd)
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1000.0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    samples.sort()
    return {
        "what": f"{count} x (4 KiB append + fdatasync) in {work}",
        "count": count,
        "mean_ms": round(statistics.fmean(samples), 4),
        "p50_ms": round(samples[len(samples) // 2], 4),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 4),
        "max_ms": round(samples[-1], 4),
    }


def zenoh_rtt(build: Path, count: int) -> dict:
    port = PORTS["zenoh_rtt"]
    require_free([port])
    res = run([build / "zenoh-rtt", "--listen", f"tcp/127.0.0.1:{port}", "--count", count,
               "--warmup", max(50, count // 10), "--size", MESSAGE_BYTES], timeout=120)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["what"] = (f"{count} sequential Zenoh gets with a {MESSAGE_BYTES} B payload, client session -> "
                   "router session over tcp loopback, queryable replies at once (build/zenoh-rtt)")
    return out


# ---------------------------------------------------------------- results

def lat(p50=None, p99=None, mean=None, kind: str = "") -> dict:
    def r(v):
        return None if v is None else round(float(v), 3)
    return {"p50_ms": r(p50), "p99_ms": r(p99), "mean_ms": r(mean), "what": kind}


def row(system: str, label: str, topology: str, producers: int, consumers: int, **kw) -> dict:
    out = {
        "system": system, "label": label, "topology": topology, "nodes": TOPOLOGIES[topology],
        "producers": producers, "consumers": consumers, "message_bytes": MESSAGE_BYTES,
        "scenario": f"{'1 node' if topology == 'single' else '3 nodes'}, {producers}+{consumers}",
        "puts_per_second": None, "consumed_per_second": None,
        "put_latency": lat(), "consume_latency": lat(), "error": None,
    }
    out.update(kw)
    return out


# ---------------------------------------------------------------- mailbox

def dur(seconds: float) -> str:
    """A duration as `mailbox bench` takes it."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(round(seconds * 1000))}ms"


# mailbox's half-peak offered put rate per topology: peers that can limit
# their rate are measured at the same offered load.
OFFERED_AT_HALF_PEAK: dict[str, float] = {}


def mailbox_system(args, topology: str, work: Path, rows: list[dict]) -> None:
    build = args.build_dir
    n = TOPOLOGIES[topology]
    zport = [PORTS["mailbox_zenoh"] + i for i in range(n)]
    rport = [PORTS["mailbox_raft"] + i for i in range(n)]
    require_free(zport + rport)
    procs = []
    try:
        for i in range(n):
            argv = [build / "mailboxd", "--data-dir", work / f"n{i + 1}", "--listen", f"tcp/127.0.0.1:{zport[i]}",
                    "--raft-address", f"127.0.0.1:{rport[i]}", "--log-level", "warn"]
            if n > 1:
                argv += ["--node-id", i + 1]
                for j in range(n):
                    argv += ["--peer", f"{j + 1}=127.0.0.1:{rport[j]}"]
            procs.append(PROCS.start(f"mailboxd{i + 1}", argv, work / f"n{i + 1}.log"))
        endpoint = f"tcp/127.0.0.1:{zport[0]}"
        wait_until("mailboxd to answer stats", lambda: run(
            [build / "mailbox", "--connect", endpoint, "--timeout-ms", "1000", "stats", "ready"],
            timeout=10, check=False).returncode == 0, timeout=60)
        commit = run(["git", "rev-parse", "--short", "HEAD"], timeout=10, check=False, cwd=ROOT).stdout.strip()
        def measure(producers, consumers, rate=None):
            argv = [build / "mailbox", "--json", "--connect", endpoint, "bench",
                    "--producers", producers, "--consumers", consumers, "--size", MESSAGE_BYTES,
                    "--duration", dur(args.duration), "--warmup", dur(args.warmup),
                    "--mailbox", f"bench-{producers}x{consumers}" + ("-rate" if rate else "")]
            if rate:
                argv += ["--rate", f"{rate:.0f}"]
            log(f"mailbox {topology} {producers}+{consumers}" + (f" at {rate:.0f} puts/s" if rate else ""))
            res = run(argv, timeout=args.duration + args.warmup + 120)
            out = json.loads(res.stdout.strip().splitlines()[-1])
            pl, cl = out["put_latency"], out["consume_latency"]
            r = row(
                "mailbox", "mailbox (fsync before ack)", topology, producers, consumers,
                server_version=f"mailboxd {commit}", tool="mailbox bench",
                durability="every put and consume is fsynced (Raft log) before it is acknowledged",
                command=" ".join(str(a) for a in argv),
                puts_per_second=out["puts_per_second"], consumed_per_second=out["messages_consumed_per_second"],
                put_latency=lat(pl["p50_ms"], pl["p99_ms"], None, "acknowledged put round trip"),
                consume_latency=lat(cl["p50_ms"], cl["p99_ms"], None, "consume query round trip"),
                measured_s=out["duration_s"], errors=out.get("errors"), raw=out)
            if rate:
                # The latency goal: p99 at half the closed-loop peak.
                r["scenario"] += " at half peak"
                r["offered_puts_per_second"] = round(rate)
                OFFERED_AT_HALF_PEAK[topology] = rate
            rows.append(r)
            return out

        for producers, consumers in SCENARIOS:
            out = measure(producers, consumers)
            if producers == 16 and out["puts_per_second"] > 0:
                measure(producers, consumers, rate=out["puts_per_second"] / 2)
    finally:
        for p in procs:
            PROCS.stop(p)


# ---------------------------------------------------------------- NATS JetStream

# system: (server binary, sync_interval: always?, label, durability)
NATS_VARIANTS = {
    "nats-always": (NATS_SERVER_GO, True, "NATS JetStream, sync_interval: always",
                    "sync_interval: always: a publish is acknowledged once fsynced (on each replica)"),
    "nats-default": (NATS_SERVER_GO, False, "NATS JetStream, default (fsync every 2 min)",
                     "default sync_interval: acknowledged when written, fsynced in the background every 2 min"),
    "nats-debian-default": (NATS_SERVER_DEBIAN, False, "NATS JetStream (Debian 2.9), default (fsync every 60 s)",
                            "Debian's 2.9 has no sync_interval option: acknowledged when written, fsynced in "
                            "the background every 60 s"),
}

NATS_RATE = re.compile(r"stats: ([\d,]+) msgs/sec ~ [^~]+ ~ ([\d.]+)us")
NATS_AGG = re.compile(r"aggregated stats: ([\d,]+) msgs/sec")
NATS_AVG_LAT = re.compile(r"avg latencies min [\d.]+us \| avg ([\d.]+)us")


def parse_nats_bench(text: str) -> tuple[float, float | None]:
    """(messages per second, mean per-client latency in ms) from `nats bench` output."""
    m = NATS_AGG.search(text)
    if m:
        rate = float(m.group(1).replace(",", ""))
        a = NATS_AVG_LAT.search(text)
        return rate, (float(a.group(1)) / 1000.0 if a else None)
    m = NATS_RATE.search(text)
    if not m:
        raise Failure(f"cannot parse nats bench output: {text.strip()[-400:]}")
    return float(m.group(1).replace(",", "")), float(m.group(2)) / 1000.0


def summary_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if "stats:" in line or "message rates" in line or "avg latencies" in line]


def nats_system(args, system: str, topology: str, work: Path, rows: list[dict]) -> None:
    server, always, label, durability = NATS_VARIANTS[system]
    if not server.exists():
        raise Failure(f"{server} is missing: run bench/peers/install.sh")
    version = version_of([server, "--version"]).replace(": v", " ")
    n = TOPOLOGIES[topology]
    cport = [PORTS["nats_client"] + i for i in range(n)]
    rport = [PORTS["nats_cluster"] + i for i in range(n)]
    require_free(cport + (rport if n > 1 else []))
    procs = []
    try:
        for i in range(n):
            conf = [f'server_name: "n{i + 1}"', f"listen: 127.0.0.1:{cport[i]}",
                    "jetstream {", f'  store_dir: "{work / f"n{i + 1}"}"']
            if always:
                conf.append("  sync_interval: always")
            conf.append("}")
            if n > 1:
                routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(rport) if j != i)
                conf += ["cluster {", '  name: "bench"', f"  listen: 127.0.0.1:{rport[i]}",
                         f"  routes: [{routes}]", "}"]
            path = work / f"n{i + 1}.conf"
            path.write_text("\n".join(conf) + "\n")
            procs.append(PROCS.start(f"nats{i + 1}", [server, "-c", path], work / f"n{i + 1}.log"))
        env = dict(os.environ, NATS_URL=f"nats://127.0.0.1:{cport[0]}")
        env.pop("NATS_CONTEXT", None)
        cli = [NATS_CLI, "--no-context"]
        for producers, consumers in SCENARIOS:
            stream = f"bench{producers}x{consumers}"
            subject = f"bench.{producers}x{consumers}"
            cfg = work / f"{stream}.json"
            cfg.write_text(json.dumps({
                "name": stream, "subjects": [subject], "retention": "workqueue", "storage": "file",
                "num_replicas": n, "discard": "old", "max_msgs": -1, "max_bytes": -1, "max_age": 0,
                "max_msg_size": -1, "max_consumers": -1, "duplicate_window": 0}))
            # JetStream (and its meta leader in a cluster) takes a moment after start.
            wait_until(f"stream {stream}", lambda: run(cli + ["stream", "add", "--config", cfg], timeout=30,
                                                       env=env, check=False).returncode == 0, timeout=60,
                       interval=1.0)
            log(f"{system} {topology} {producers}+{consumers} ({version})")
            pub_argv = cli + ["bench", "js", "pub", "sync", subject, "--stream", stream,
                              "--clients", producers, "--size", MESSAGE_BYTES, "--no-progress"]
            fetch_argv = cli + ["bench", "js", "fetch", "--stream", stream, "--clients", consumers,
                                "--size", MESSAGE_BYTES, "--batch", 1, "--doubleack", "--acks", "explicit",
                                "--no-progress"]

            def pair(msgs: int, timeout: float):
                """Publishers and consumers of `msgs` messages, concurrently."""
                t0 = time.monotonic()
                with tempfile.TemporaryFile("w+") as pub_out, tempfile.TemporaryFile("w+") as fetch_out:
                    fetch = subprocess.Popen([str(a) for a in fetch_argv + ["--msgs", msgs]], env=env,
                                             stdout=fetch_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    pub = subprocess.Popen([str(a) for a in pub_argv + ["--msgs", msgs]], env=env,
                                           stdout=pub_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    try:
                        pub.wait(timeout=timeout)
                        fetch.wait(timeout=max(5.0, timeout - (time.monotonic() - t0)))
                    except subprocess.TimeoutExpired:
                        for p in (pub, fetch):
                            if p.poll() is None:
                                p.kill()
                                p.wait()
                        raise Failure(f"nats bench of {msgs} messages did not finish in {timeout:.0f} s")
                    pub_out.seek(0)
                    fetch_out.seek(0)
                    texts = pub_out.read(), fetch_out.read()
                if pub.returncode or fetch.returncode:
                    raise Failure(f"nats bench failed: {texts[0][-300:]} / {texts[1][-300:]}")
                return time.monotonic() - t0, texts

            # `nats bench` counts messages, not time: a warm-up that also
            # measures the rate, then a measured run sized to the duration.
            msgs = max(200, 100 * producers)
            warm_elapsed = 0.0
            rate = None
            while warm_elapsed < args.warmup or rate is None:
                elapsed, texts = pair(msgs, timeout=120)
                warm_elapsed += elapsed
                rate = min(parse_nats_bench(texts[0])[0], parse_nats_bench(texts[1])[0])
                msgs = max(200, int(rate * max(1.0, args.warmup - warm_elapsed)))
            # A measured run far shorter than asked for (the warm-up's rate was
            # low) counts as more warm-up, and is repeated longer.
            measured = max(500, int(rate * args.duration))
            for attempt in range(4):
                elapsed, (pub_text, fetch_text) = pair(measured, timeout=max(120.0, args.duration * 6))
                put_rate, put_avg = parse_nats_bench(pub_text)
                consume_rate, consume_avg = parse_nats_bench(fetch_text)
                if elapsed >= 0.7 * args.duration or attempt == 3:
                    break
                measured = max(measured + 500, int(measured * args.duration / max(elapsed, 0.1)))
            rows.append(row(
                system, label, topology, producers, consumers,
                server_version=version, tool=f"nats bench ({version_of([NATS_CLI, '--version'])})",
                durability=durability,
                command=(" ".join(str(a) for a in pub_argv + ["--msgs", measured]) + "  &  " +
                         " ".join(str(a) for a in fetch_argv + ["--msgs", measured])),
                stream=f"{stream}: WorkQueue retention, file storage, R{n}",
                puts_per_second=put_rate, consumed_per_second=consume_rate,
                put_latency=lat(None, None, put_avg,
                                "synchronous JetStream publish; nats bench reports only the mean "
                                "(per-client run time / messages), no percentiles"),
                consume_latency=lat(None, None, consume_avg,
                                    "fetch of 1 + double ack (acknowledged by the server); mean only"),
                measured_s=round(elapsed, 2), messages=measured,
                raw={"pub": summary_lines(pub_text), "fetch": summary_lines(fetch_text)}))
    finally:
        for p in procs:
            PROCS.stop(p)


# ---------------------------------------------------------------- RabbitMQ

def upstream(debian_version: str) -> str:
    """3.10.8 from 3.10.8-1.1+deb12u1, 25.2.3 from 1:25.2.3+dfsg-1."""
    return re.sub(r"^\d+:", "", debian_version).split("-")[0].split("+")[0]


def rabbit_env(work: Path, i: int) -> dict:
    node = work / f"n{i + 1}"
    env = dict(os.environ)
    env.update({
        "HOME": str(work / "home"),  # the Erlang cookie lives here, for servers and CLI alike
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": f"mbbench{i + 1}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(PORTS["amqp"] + i),
        "RABBITMQ_DIST_PORT": str(PORTS["rabbit_dist"] + i),
        "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
        "RABBITMQ_LOG_BASE": str(node / "log"),
        "RABBITMQ_PID_FILE": str(node / "pid"),
        "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq"),  # absent: no config
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(node / "advanced.config"),  # absent
        "RABBITMQ_CONF_ENV_FILE": str(work / "rabbitmq-env.conf"),  # empty
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),  # none
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    })
    return env


def rabbitmqctl(work: Path, i: int, *cmd, timeout: float = 60, check: bool = True):
    node = f"mbbench{i + 1}@localhost"
    return run([RABBIT_BIN / "rabbitmqctl", "-n", node, *cmd], timeout=timeout, env=rabbit_env(work, i),
               check=check)


PT_SUMMARY = re.compile(r"(consumer|confirm) latency min/median/75th/95th/99th (\d+)/(\d+)/(\d+)/(\d+)/(\d+) µs")


def rabbit_system(args, topology: str, work: Path, rows: list[dict]) -> None:
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        raise Failure("rabbitmq-server is missing: run bench/peers/install.sh")
    if not (PERFTEST_LIB.exists() and list(PERFTEST_LIB.glob("perf-test-*.jar"))):
        raise Failure(f"PerfTest is missing in {PERFTEST_LIB}: run bench/peers/install.sh")
    perftest_jar = next(PERFTEST_LIB.glob("perf-test-*.jar")).name
    n = TOPOLOGIES[topology]
    require_free([PORTS["epmd"]] + [PORTS["amqp"] + i for i in range(n)] + [PORTS["rabbit_dist"] + i for i in range(n)])
    (work / "home").mkdir(parents=True, exist_ok=True)
    cookie = work / "home" / ".erlang.cookie"
    cookie.write_text("MAILBOXBENCHCOOKIE")
    cookie.chmod(0o400)
    (work / "rabbitmq-env.conf").write_text("")
    (work / "enabled_plugins").write_text("[].\n")
    epmd_env = rabbit_env(work, 0)
    epmd = PROCS.start("epmd", [EPMD, "-port", PORTS["epmd"], "-address", "127.0.0.1"], work / "epmd.log",
                       env=epmd_env)
    started = []
    try:
        for i in range(n):
            env = rabbit_env(work, i)
            Path(env["RABBITMQ_MNESIA_BASE"]).mkdir(parents=True, exist_ok=True)
            started.append((i, PROCS.start(f"rabbit{i + 1}", [RABBIT_BIN / "rabbitmq-server"],
                                           work / f"n{i + 1}.out", env=env, cwd=work)))
        for i in range(n):
            wait_until(f"rabbit node {i + 1}", lambda i=i: rabbitmqctl(
                work, i, "await_startup", "--timeout", "10", timeout=30, check=False).returncode == 0,
                timeout=120, interval=1.0)
        for i in range(1, n):
            rabbitmqctl(work, i, "stop_app")
            rabbitmqctl(work, i, "join_cluster", "mbbench1@localhost")
            rabbitmqctl(work, i, "start_app", timeout=120)
        if n > 1:
            status = rabbitmqctl(work, 0, "cluster_status", "--formatter", "json").stdout
            running = json.loads(status).get("running_nodes", [])
            if len(running) != n:
                raise Failure(f"rabbit cluster has {running} running")
        version = f"RabbitMQ {upstream(deb_version('rabbitmq-server'))}, Erlang {upstream(deb_version('erlang-base'))}"
        def measure(producers, consumers, rate=None):
            queue = f"bench-{producers}x{consumers}" + ("-rate" if rate else "")
            out_csv = work / f"{queue}.csv"
            total = args.warmup + args.duration
            argv = ["java", "-cp", f"{PERFTEST_LIB}/*", "com.rabbitmq.perf.PerfTest",
                    "-h", f"amqp://guest:guest@127.0.0.1:{PORTS['amqp']}",
                    "-x", producers, "-y", consumers, "-u", queue, "--quorum-queue",
                    "-qa", f"x-quorum-initial-group-size={n}",
                    "-c", 1, "-q", 1, "-s", MESSAGE_BYTES, "-z", math.ceil(total), "-o", out_csv, "-mf", "compact"]
            if rate:
                argv += ["-r", f"{rate / producers:.2f}"]  # PerfTest's rate is per producer
            log(f"rabbitmq-quorum {topology} {producers}+{consumers}" + (f" at {rate:.0f}/s" if rate else ""))
            res = run(argv, timeout=total + 120)
            lines = [r for r in csv.DictReader(out_csv.open(encoding="utf-8"))]
            measured = [r for r in lines if float(r["time (s)"]) > args.warmup + 0.5] or lines

            def mean_of(key: str) -> float:
                return statistics.fmean(float(r[key] or 0) for r in measured)

            summary = {m.group(1): [int(x) / 1000.0 for x in m.groups()[1:]] for m in PT_SUMMARY.finditer(res.stdout)}
            conf = summary.get("confirm", [None] * 5)
            cons = summary.get("consumer", [None] * 5)
            members = None
            with contextlib.suppress(Exception):
                qs = run([RABBIT_BIN / "rabbitmq-queues", "-n", "mbbench1@localhost", "quorum_status", queue,
                          "--formatter", "json"], timeout=30, env=rabbit_env(work, 0))
                members = len(json.loads(qs.stdout))
            r = row(
                "rabbitmq-quorum", "RabbitMQ quorum queue", topology, producers, consumers,
                server_version=version, tool=f"PerfTest {perftest_jar.removeprefix('perf-test-').removesuffix('.jar')}",
                durability="quorum queue: a publisher confirm is sent once a majority has fsynced the message",
                command=" ".join(str(a) for a in argv), queue_members=members,
                puts_per_second=round(mean_of("confirmed (msg/s)"), 1),
                consumed_per_second=round(mean_of("received (msg/s)"), 1),
                put_latency=lat(conf[1], conf[4], None,
                                "publisher confirm latency (1 unconfirmed per producer), PerfTest's end-of-run "
                                "summary (whole run, warm-up included)"),
                consume_latency=lat(cons[1], cons[4], None,
                                    "end-to-end latency publish -> delivery (prefetch 1, manual ack), PerfTest's "
                                    "end-of-run summary; not a consume round trip"),
                measured_s=len(measured), raw={"summary": res.stdout.strip().splitlines()[-4:]})
            if rate:
                r["scenario"] += " at half peak"
                r["offered_puts_per_second"] = round(rate)
            rows.append(r)
            return r

        for producers, consumers in SCENARIOS:
            r = measure(producers, consumers)
            if producers == 16 and r["puts_per_second"]:
                # At mailbox's half-peak rate when it ran, else at its own.
                measure(producers, consumers, rate=OFFERED_AT_HALF_PEAK.get(topology, r["puts_per_second"] / 2))
    finally:
        for i, proc in reversed(started):
            if proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    rabbitmqctl(work, i, "stop", timeout=60, check=False)
            PROCS.stop(proc, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            run([EPMD, "-port", PORTS["epmd"], "-kill"], timeout=10, env=epmd_env, check=False)
        PROCS.stop(epmd)


# ---------------------------------------------------------------- chart and table

MEAN_LABEL = "hatched: the tool's mean latency (it reports no p99)"


def chart(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    runs = [r for r in results["runs"] if not r.get("error")]
    scenarios = []
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    systems = []
    for r in runs:
        if r["system"] not in systems:
            systems.append(r["system"])
    if not runs:
        return
    colors = {"mailbox": "#1f77b4", "nats-always": "#2ca02c", "nats-default": "#98df8a",
              "nats-debian-default": "#bcbd22", "rabbitmq-quorum": "#ff7f0e"}
    labels = {s: next(f"{r['label']} [{r['server_version']}]" for r in runs if r["system"] == s) for s in systems}
    panels = [
        ("puts_per_second", None, "acknowledged puts / s", False),
        ("consumed_per_second", None, "consumed / s", False),
        ("put_latency", "p99_ms", "put p99 latency (ms, log)", True),
        ("consume_latency", "p99_ms", "consume p99 latency (ms, log)", True),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9.5))
    width = 0.8 / max(1, len(systems))
    for ax, (key, sub, title, logy) in zip(axes.flat, panels):
        for si, system in enumerate(systems):
            for xi, scen in enumerate(scenarios):
                r = next((r for r in runs if r["system"] == system and r["scenario"] == scen), None)
                if r is None:
                    continue
                v = r[key] if sub is None else r[key].get(sub)
                x = xi - 0.4 + width * (si + 0.5)
                if v is None and sub is not None and r[key].get("mean_ms") is not None:
                    # The tool reports no percentiles: its mean, hatched.
                    v = r[key]["mean_ms"]
                    ax.bar(x, v, width, color="white", edgecolor=colors.get(system, "grey"), hatch="///",
                           label=MEAN_LABEL)
                    ax.text(x, v, f"mean {v:.2g}", ha="center", va="bottom", fontsize=6, rotation=90)
                    continue
                if v is None:
                    ax.text(x, 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center", fontsize=7,
                            rotation=90, color=colors.get(system, "grey"))
                    continue
                ax.bar(x, v, width, color=colors.get(system, "grey"), label=labels[system])
                ax.text(x, v, f"{v:,.0f}" if v >= 100 else f"{v:.2g}", ha="center", va="bottom", fontsize=6,
                        rotation=90)
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([s.replace(", ", "\n", 1).replace(" at half", "\nat half") for s in scenarios], fontsize=8)
        if logy:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                if n == MEAN_LABEL:
                    h = Patch(facecolor="white", edgecolor="black", hatch="///")
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8)

    phys = results.get("physical", {})
    fs, rtt = phys.get("fsync_4k", {}), phys.get("zenoh_rtt", {})
    s = results["settings"]
    fig.suptitle(
        f"1 KiB messages, acknowledged put + consume, closed loop; {s['duration_s']} s measured after "
        f"{s['warmup_s']} s warm-up{' (quick run)' if s['quick'] else ''}; {results['machine']['cpus']} cores\n"
        f"fdatasync 4 KiB p50/p99 {fs.get('p50_ms', '?')}/{fs.get('p99_ms', '?')} ms; Zenoh query RTT "
        f"p50/p99 {rtt.get('p50_ms', '?')}/{rtt.get('p99_ms', '?')} ms. nats bench reports no percentiles "
        f"(its mean, hatched); RabbitMQ's consume latency is PerfTest's end-to-end latency", fontsize=9)
    fig.tight_layout(rect=(0, 0.09, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


# Peers whose acknowledgement means the message is fsynced, as ours does.
EQUAL_DURABILITY_PEERS = ("nats-always", "rabbitmq-quorum")
THROUGHPUT_FIELDS = ("puts_per_second", "consumed_per_second")
LATENCY_FIELDS = (("put_latency", "p50_ms"), ("put_latency", "p99_ms"), ("consume_latency", "p50_ms"),
                  ("consume_latency", "p99_ms"), ("put_latency", "mean_ms"), ("consume_latency", "mean_ms"))


def spread(values: list) -> dict | None:
    """Median, min and max of the values that are not None."""
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {"median": statistics.median(got), "min": min(got), "max": max(got), "n": len(got)}


def medians(results: dict) -> list[dict]:
    """One row per (system, topology, scenario): the median of each number
    over the rounds, in the order first seen; `spread` keeps min and max."""
    groups: dict[tuple, list[dict]] = {}
    for r in results["runs"]:
        if not r.get("error"):
            groups.setdefault((r["system"], r["topology"], r["scenario"]), []).append(r)
    out = []
    for rows in groups.values():
        m = json.loads(json.dumps(rows[0]))
        m["rounds"] = len(rows)
        m["spread"] = {}
        for f in THROUGHPUT_FIELDS:
            s = spread([r[f] for r in rows])
            m[f] = None if s is None else s["median"]
            m["spread"][f] = s
        for group, f in LATENCY_FIELDS:
            s = spread([r[group][f] for r in rows])
            m[group][f] = None if s is None else round(s["median"], 3)
            m["spread"][f"{group}.{f}"] = s
        out.append(m)
    return out


def ratios(results: dict) -> list[dict]:
    """Per topology and closed-loop scenario: mailbox over the best equal-
    durability peer, for puts and for consumes, round by round."""
    by_round: dict[tuple, dict] = {}
    for r in results["runs"]:
        if r.get("error") or "half peak" in r["scenario"]:
            continue
        key = (r["topology"], r["scenario"], r.get("round", 0))
        by_round.setdefault(key, {})[r["system"]] = r
    per_scenario: dict[tuple, dict] = {}
    for (topology, scenario, _), systems in by_round.items():
        ours = systems.get("mailbox")
        peers = [systems[s] for s in EQUAL_DURABILITY_PEERS if s in systems]
        if ours is None or not peers:
            continue
        entry = per_scenario.setdefault((topology, scenario), {f: [] for f in THROUGHPUT_FIELDS})
        for f in THROUGHPUT_FIELDS:
            best = max((p[f] for p in peers if p[f]), default=None)
            if ours[f] is not None and best:
                entry[f].append(ours[f] / best)
    return [{"topology": t, "scenario": s, **{f: spread(v[f]) for f in THROUGHPUT_FIELDS}}
            for (t, s), v in per_scenario.items()]


def summary_table(results: dict) -> str:
    """The medians over the rounds with their spread, and the ratios."""
    def cell(s, digits=0):
        if s is None:
            return "n/a"
        if s["n"] == 1:
            return fmt(s["median"], digits)
        return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"
    lines = [f"Medians over {results['settings'].get('repeat', 1)} interleaved round(s), min-max in brackets.",
             "",
             "| system | scenario | puts/s | put p99 (ms) | consumed/s | consume p99 (ms) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in medians(results):
        sp = m["spread"]
        lines.append(f"| {m['label']} | {m['scenario']} | {cell(sp['puts_per_second'])} | "
                     f"{cell(sp['put_latency.p99_ms'], 2)} | {cell(sp['consumed_per_second'])} | "
                     f"{cell(sp['consume_latency.p99_ms'], 2)} |")
    rs = ratios(results)
    if rs:
        lines += ["", "mailbox / the best equal-durability peer (" + ", ".join(EQUAL_DURABILITY_PEERS) +
                  "), round by round:", "",
                  "| scenario | puts ratio | consumes ratio |", "| --- | --- | --- |"]
        for r in rs:
            lines.append(f"| {r['scenario']} | {cell(r['puts_per_second'], 2)} | "
                         f"{cell(r['consumed_per_second'], 2)} |")
    return "\n".join(lines) + "\n"


def table(results: dict) -> str:
    lines = ["| round | system | server | scenario | puts/s | put p50 / p99 (ms) | consumed/s | consume p50 / p99 (ms) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["runs"]:
        if r.get("error"):
            lines.append(f"| {r.get('round', 0) + 1} | {r['system']} | | {r['scenario']} | "
                         f"error: {r['error'][:80]} | | | |")
            continue
        pl, cl = r["put_latency"], r["consume_latency"]

        def pair(lt):
            if lt["p50_ms"] is None and lt["p99_ms"] is None:
                return f"mean {fmt(lt['mean_ms'], 2)}" if lt["mean_ms"] is not None else "n/a"
            return f"{fmt(lt['p50_ms'], 2)} / {fmt(lt['p99_ms'], 2)}"
        lines.append(f"| {r.get('round', 0) + 1} | {r['label']} | {r['server_version']} | {r['scenario']} | "
                     f"{fmt(r['puts_per_second'])} | "
                     f"{pair(pl)} | {fmt(r['consumed_per_second'])} | {pair(cl)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

BINARIES = ("mailboxd", "mailbox", "zenoh-rtt")


def schedule(systems: list[str], topologies: list[str], repeat: int):
    """(round, topology, system) in run order: each round every topology,
    within it every system, starting one system later each round."""
    for k in range(repeat):
        order = systems[k % len(systems):] + systems[:k % len(systems)]
        for topology in topologies:
            for system in order:
                yield k, topology, system


def snapshot_binaries(build: Path, dest: Path) -> Path:
    """Copies the programs under test, so a rebuild during the run changes nothing."""
    dest.mkdir(parents=True, exist_ok=True)
    for exe in BINARIES:
        for attempt in range(12):
            try:
                shutil.copy2(build / exe, dest / exe)
                if run([dest / exe, "--help"], timeout=20, check=False).returncode == 0:
                    break
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(5)  # being relinked
        else:
            raise SystemExit(f"bench: {build / exe} does not run")
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help=f"comma-separated systems ({','.join(SYSTEMS)})")
    ap.add_argument("--topology", default="", help="single or cluster3 (default both)")
    ap.add_argument("--quick", action="store_true", help="3 s measured after 1 s warm-up: a smoke run")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds (BENCH_DURATION_S, 15)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds (BENCH_WARMUP_S, 3)")
    ap.add_argument("--work-dir", type=Path, default=None, help="data dirs and logs (a new dir under /tmp)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--build-dir", type=Path, default=ROOT / os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "1")),
                    help="rounds, systems interleaved (BENCH_REPEAT, 1)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat is at least 1")

    if args.duration is None:
        args.duration = 3.0 if args.quick else float(os.environ.get("BENCH_DURATION_S", "15"))
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else float(os.environ.get("BENCH_WARMUP_S", "3"))
    systems = [s for s in args.only.split(",") if s] or SYSTEMS
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {SYSTEMS}")
    topologies = [args.topology] if args.topology else list(TOPOLOGIES)
    if any(t not in TOPOLOGIES for t in topologies):
        ap.error(f"topology is one of {list(TOPOLOGIES)}")
    args.build_dir = args.build_dir.resolve()
    for exe in BINARIES:
        if not (args.build_dir / exe).exists():
            ap.error(f"{args.build_dir / exe} is missing: build first (make build)")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mailbox-bench-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.build_dir = snapshot_binaries(args.build_dir, work / "bin")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum, _frame):
        PROCS.stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    load = os.getloadavg()
    results = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(), "cpu_model": next((line.split(":", 1)[1].strip() for line in
                                                        open("/proc/cpuinfo") if line.startswith("model name")), "?"),
            "kernel": platform.release(), "loadavg_at_start": [round(x, 2) for x in load],
            "work_dir": str(work),
        },
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "quick": args.quick,
                     "message_bytes": MESSAGE_BYTES, "scenarios": [f"{p}+{c}" for p, c in SCENARIOS],
                     "topologies": topologies, "systems": systems, "repeat": args.repeat,
                     "in_flight": "closed loop: one operation in flight per client; clients connect to node 1"},
        "versions": {
            "mailbox": run(["git", "rev-parse", "HEAD"], timeout=10, check=False, cwd=ROOT).stdout.strip(),
            "nats_server_go": version_of([NATS_SERVER_GO, "--version"]),
            "nats_server_debian": version_of([NATS_SERVER_DEBIAN, "--version"]),
            "natscli": version_of([NATS_CLI, "--version"]),
            "rabbitmq_server": deb_version("rabbitmq-server"), "erlang": deb_version("erlang-base"),
            "perftest": next((p.name for p in PERFTEST_LIB.glob("perf-test-*.jar")), "missing"),
            "java": version_of(["java", "-version"]),
        },
        "physical": {},
        "runs": [],
    }
    try:
        log("physical context: fsync latency, Zenoh round trip")
        results["physical"]["fsync_4k"] = fsync_latency(work)
        try:
            results["physical"]["zenoh_rtt"] = zenoh_rtt(args.build_dir, 500 if args.quick else 2000)
        except (Failure, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            results["physical"]["zenoh_rtt"] = {"error": str(exc)}
        for round_index, topology, system in schedule(systems, topologies, args.repeat):
            sub = work / f"{system}-{topology}-{round_index}"
            sub.mkdir(parents=True, exist_ok=True)
            log(f"round {round_index + 1}/{args.repeat}: {system}, {topology}: starting")
            rows: list[dict] = []
            try:
                if system == "mailbox":
                    mailbox_system(args, topology, sub, rows)
                elif system.startswith("nats"):
                    nats_system(args, system, topology, sub, rows)
                else:
                    rabbit_system(args, topology, sub, rows)
            except (Failure, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
                log(f"{system}, {topology}: FAILED: {exc} (logs in {sub})")
                done = {(r["producers"], r["consumers"]) for r in rows}
                rows += [row(system, system, topology, p, c, server_version="", error=str(exc))
                         for p, c in SCENARIOS if (p, c) not in done]
            for r in rows:
                r["round"] = round_index
            results["runs"].extend(rows)
            for r in rows:
                if not r.get("error"):
                    log(f"  {r['scenario']}: {fmt(r['puts_per_second'])} puts/s, "
                        f"{fmt(r['consumed_per_second'])} consumed/s")
    finally:
        PROCS.stop_all()
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        (args.out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        md = summary_table(results) + "\nEvery run:\n\n" + table(results)
        (args.out_dir / "results.md").write_text(md)
        try:
            chart({**results, "runs": medians(results)}, args.out_dir / "chart.png")
        except Exception as exc:  # noqa: BLE001 - the JSON is the result; the chart is a view of it
            log(f"chart failed: {exc}")
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(md)
    log(f"wrote {args.out_dir / 'results.json'} and chart.png in {results['elapsed_s']} s")
    failed = [r for r in results["runs"] if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
