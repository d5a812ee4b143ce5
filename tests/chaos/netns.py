"""Real networks for the chaos test: one Linux network namespace per node.

Topology: a bridge `<prefix>br` in the root namespace (address .254, where
the test's clients live) and, per node i, a namespace `<prefix>n<i>` whose
`eth0` (address 10.199.0.<i>) is one end of a veth pair plugged into the
bridge. Node-to-node traffic (Raft and Zenoh) crosses the bridge, so faults
are real packet drops, applied in each node's namespace:

- an nftables table `inet chaos` with an output chain: a cut A->B is a rule
  in A's namespace dropping packets to B (both directions for a partition);
  "lossy" adds a rule dropping a random share of packets to other nodes;
- "slow": a token-bucket (tbf) qdisc on the node's eth0, so bursts queue up
  and are delayed or dropped (this kernel has no netem).

Clients (address .254) are never cut off: a client connected to a node on the
minority side sees that node's answers (`unavailable`), as a real client would.

Needs root (CAP_NET_ADMIN), iproute2 and nftables. Called from one thread only.
"""
import subprocess

SUBNET = "10.199.0"
CLIENT_ADDRESS = f"{SUBNET}.254"


def run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Network:
    def __init__(self, node_count, prefix="mbxc"):
        assert 1 <= node_count <= 9
        self.node_count = node_count
        self.prefix = prefix
        self.bridge = f"{prefix}br"
        self.cuts = set()  # (src, dst) node pairs whose packets are dropped
        self.loss_percent = {}  # node -> share of its packets to other nodes dropped
        self.slow = set()  # nodes with a token bucket on eth0

    def namespace(self, i):
        return f"{self.prefix}n{i}"

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i}"

    def ns_command(self, i):
        """Prefix that runs a command inside node i's namespace."""
        return ["ip", "netns", "exec", self.namespace(i)]

    # ---- lifecycle ----
    def teardown(self):
        """Removes everything this prefix could have created (also leftovers
        of a crashed earlier run)."""
        for i in range(1, 10):
            run("ip", "netns", "del", self.namespace(i), check=False)
            run("ip", "link", "del", f"{self.prefix}v{i}", check=False)
        run("ip", "link", "del", self.bridge, check=False)

    def setup(self):
        self.teardown()
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for i in range(1, self.node_count + 1):
            ns, host_end = self.namespace(i), f"{self.prefix}v{i}"
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", host_end, "master", self.bridge)
            run("ip", "link", "set", host_end, "up")
            inside = self.ns_command(i)
            run(*inside, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            run(*inside, "ip", "link", "set", "eth0", "up")
            run(*inside, "ip", "link", "set", "lo", "up")
            self._apply_rules(i)
        for i in range(1, self.node_count + 1):  # every node reaches every other
            for j in range(1, self.node_count + 1):
                if i != j:
                    run(*self.ns_command(i), "ping", "-c", "1", "-W", "2", self.address(j))

    # ---- faults ----
    def _apply_rules(self, src):
        """Rewrites node src's nftables table from self.cuts and self.loss_percent."""
        rules = [f"ip daddr {self.address(b)} drop" for (a, b) in sorted(self.cuts) if a == src]
        if src in self.loss_percent:
            rules.append(f"ip daddr != {CLIENT_ADDRESS} numgen random mod 100 < {self.loss_percent[src]} drop")
        script = "table inet chaos\ndelete table inet chaos\ntable inet chaos {\n" \
                 "  chain out {\n    type filter hook output priority 0; policy accept;\n"
        script += "".join(f"    {r}\n" for r in rules) + "  }\n}\n"
        r = subprocess.run(self.ns_command(src) + ["nft", "-f", "-"], input=script, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nft in {self.namespace(src)} failed: {r.stderr.strip()}\n{script}")

    def cut(self, pairs):
        """Drops packets for each (src, dst) pair, in that direction only."""
        touched = set()
        for (a, b) in pairs:
            assert a != b
            self.cuts.add((a, b))
            touched.add(a)
        for a in touched:
            self._apply_rules(a)

    def partition(self, groups):
        """Nodes in different groups cannot talk, in either direction."""
        pairs = []
        for gi, g in enumerate(groups):
            for gj, h in enumerate(groups):
                if gi != gj:
                    pairs += [(a, b) for a in g for b in h]
        self.cut(pairs)

    def make_lossy(self, i, loss_percent):
        self.loss_percent[i] = loss_percent
        self._apply_rules(i)

    def make_slow(self, i, rate_kbit, latency_ms):
        run(*self.ns_command(i), "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate",
            f"{rate_kbit}kbit", "burst", "16kb", "latency", f"{latency_ms}ms")
        self.slow.add(i)

    def heal(self):
        """Removes every cut, loss and token bucket."""
        touched = {a for (a, _) in self.cuts} | set(self.loss_percent)
        self.cuts.clear()
        self.loss_percent.clear()
        for a in sorted(touched):
            self._apply_rules(a)
        for i in sorted(self.slow):
            run(*self.ns_command(i), "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        self.slow.clear()
