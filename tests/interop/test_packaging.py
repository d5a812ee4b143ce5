"""Packaging (issue #14): `make deb` builds a Debian package; its contents,
its systemd unit, and the packaged mailboxd started with the packaged
configuration in a throwaway root (dpkg-deb -x: nothing is installed on
the machine)."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILD_DIR, ROOT, Client, free_port


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run([str(ROOT / "scripts" / "build-deb.sh"), str(BUILD_DIR), str(out)], capture_output=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr.decode(errors="replace")
    deb = built.stdout.decode().strip().splitlines()[-1]
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    return deb, root


def test_the_package_holds_programs_unit_config_and_man_pages(package):
    deb, _ = package
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, check=True).stdout.decode()
    for path in ["./usr/bin/mailboxd", "./usr/bin/mailbox", "./lib/systemd/system/mailboxd.service",
                 "./etc/mailbox/mailboxd.toml", "./usr/share/man/man1/mailboxd.1.gz",
                 "./usr/share/man/man1/mailbox.1.gz"]:
        assert path in listing, listing
    info = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Depends"], capture_output=True,
                          check=True).stdout.decode()
    assert "Package: mailbox" in info and "libraft" in info and "libsystemd0" in info, info
    conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True, check=True).stdout
    assert b"/etc/mailbox/mailboxd.toml" in conffiles


def test_the_unit_is_a_sandboxed_notify_service(package):
    _, root = package
    unit = (root / "lib/systemd/system/mailboxd.service").read_text()
    for line in ["Type=notify", "DynamicUser=yes", "StateDirectory=mailbox", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "ExecStart=/usr/bin/mailboxd --config /etc/mailbox/mailboxd.toml"]:
        assert line in unit.splitlines(), line
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    # Verified as the package has it, with the program's path pointed into
    # the extracted root (verify checks that ExecStart exists); a line it
    # ignores is a warning on stderr, so stderr must stay empty.
    units = root / "verify"
    units.mkdir(exist_ok=True)
    (units / "mailboxd.service").write_text(unit.replace("/usr/bin/mailboxd", str(root / "usr/bin/mailboxd")))
    out = subprocess.run([analyze, "verify", "--man=no", str(units / "mailboxd.service")], capture_output=True,
                         timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr.decode(errors="replace")


def test_the_man_page_documents_every_flag(package):
    _, root = package
    page = subprocess.run(["zcat", str(root / "usr/share/man/man1/mailboxd.1.gz")], capture_output=True,
                          check=True).stdout.decode()
    for flag in ["metrics\\-listen", "log\\-format", "check\\-config", "data\\-dir"]:
        assert flag in page, flag


def test_the_packaged_daemon_runs_with_the_packaged_config(package, workdir):
    _, root = package
    mailboxd = root / "usr/bin/mailboxd"
    config = root / "etc/mailbox/mailboxd.toml"
    check = subprocess.run([str(mailboxd), "--config", str(config), "--check-config"], capture_output=True,
                           timeout=30)
    assert check.returncode == 0, check.stderr
    port, raft_port, http_port = free_port(), free_port(), free_port()
    log = open(workdir / "packaged.log", "wb")
    proc = subprocess.Popen([str(mailboxd), "--config", str(config), "--data-dir", str(workdir / "data"),
                             "--listen", f"tcp/127.0.0.1:{port}", "--raft-address", f"127.0.0.1:{raft_port}",
                             "--peer", f"1=127.0.0.1:{raft_port}", "--metrics-listen", f"127.0.0.1:{http_port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        client = Client(f"tcp/127.0.0.1:{port}", open_timeout=20)
        client.wait_ready()
        client.put_ack("packaged", b"from the package")
        kind, body = client.consume("packaged")
        assert kind == "ok" and body["payload"] == b"from the package"
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()
