"""The README's Python example works unchanged against a running service."""
import re
import subprocess
import sys

from conftest import ROOT


def test_readme_python_example(node, client):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, "the README has one Python example"
    code = blocks[0].replace("tcp/127.0.0.1:7447", node.endpoint)
    assert code.count(node.endpoint) == 1
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().splitlines()
    assert out[0].startswith('stored {"id":"'), out
    assert out[1].startswith("hello {"), out
    assert "'mailbox': 'alice'" in out[1] and "'deliveries': 1" in out[1], out
