"""Many waiting clients (issue 15, item 7): park N long-polls on N mailboxes
of a running mailboxd, then publish one message to each, and report when
the replies arrive (from the first publication).

    python bench/waiters.py --connect tcp/127.0.0.1:7447 --waiters 10000

It prints one JSON line: waiters parked, replies received, p50/p99/max
reply latency (s) after the publications began, and how long the
publications took. The server's RSS can be read from /proc beside it.

Each query's reply callback runs on the Zenoh thread that receives it
(`zenoh.handlers.Callback(..., indirect=False)`). With a plain Python
function, eclipse-zenoh 1.10 runs every query's callback on a Python thread
of its own: 10,000 long-polls are 10,000 threads contending for the GIL,
and the client, not the service, took 14-30 s to publish and collect
(`--indirect` keeps that behaviour to show it; docs/BENCHMARKS.md, "Many
waiting clients"). `build/mailbox-waiters` is the same benchmark in C++.
"""
import argparse
import json
import threading
import time

import zenoh

PREFIX = "forge/mailbox"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", default="tcp/127.0.0.1:7447")
    ap.add_argument("--waiters", type=int, default=10000)
    ap.add_argument("--wake", type=int, default=0, help="mailboxes to publish to (0: all)")
    ap.add_argument("--wait", default="60s")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds for the long-polls to park")
    ap.add_argument("--indirect", action="store_true",
                    help="a Python thread per query's callback (eclipse-zenoh's default for a plain function)")
    args = ap.parse_args()
    wake = args.wake if 0 < args.wake <= args.waiters else args.waiters

    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("connect/endpoints", json.dumps([args.connect]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(conf)
    # Publications from their own session: the waiting queries' session
    # must not slow the publisher down.
    publisher = zenoh.open(conf)
    lock = threading.Lock()
    arrivals = []
    errors = []
    t_pub = [None]

    def handler_for(i):
        def on_reply(reply):
            now = time.monotonic()
            with lock:
                if reply.ok is not None:
                    arrivals.append(now)
                else:
                    errors.append(reply.err.payload.to_bytes()[:80])
        return on_reply if args.indirect else zenoh.handlers.Callback(on_reply, indirect=False)

    for i in range(args.waiters):
        session.get(f"{PREFIX}/w{i}?wait={args.wait}", handler_for(i), timeout=120.0)
    time.sleep(args.settle)
    t_pub[0] = time.monotonic()
    for i in range(wake):
        publisher.put(f"{PREFIX}/w{i}", b"x", congestion_control=zenoh.CongestionControl.BLOCK)
    t_published = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if len(arrivals) + len(errors) >= wake:
                break
        time.sleep(0.05)
    with lock:
        lat = sorted(a - t_pub[0] for a in arrivals)
        errs = list(errors)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

    print(json.dumps({"waiters": args.waiters, "woken": wake, "indirect": args.indirect, "replies": len(lat), "errors": len(errs),
                      "first_errors": [e.decode(errors="replace") for e in errs[:3]],
                      "publish_s": round(t_published - t_pub[0], 3),
                      "p50_s": pct(0.5), "p99_s": pct(0.99), "max_s": round(lat[-1], 3) if lat else None}))
    publisher.close()
    session.close()


if __name__ == "__main__":
    main()
