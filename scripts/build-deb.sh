#!/usr/bin/env bash
# Builds the Debian package of mailbox from an existing build directory:
#   scripts/build-deb.sh BUILD_DIR OUT_DIR
# Contents: /usr/bin/mailboxd and /usr/bin/mailbox, the systemd unit
# (packaging/mailboxd.service), the default configuration
# /etc/mailbox/mailboxd.toml (a conffile), and man pages generated from
# --help by help2man. Prints the path of the .deb. `make deb` runs it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:?usage: build-deb.sh BUILD_DIR OUT_DIR}" && pwd)
out_dir=${2:?usage: build-deb.sh BUILD_DIR OUT_DIR}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

version=${MAILBOX_VERSION:-0.1.0}
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/mailbox" \
  "$stage/usr/share/man/man1" "$stage/usr/share/doc/mailbox"
install -m 0755 -s "$build_dir/mailboxd" "$build_dir/mailbox" "$stage/usr/bin/"
install -m 0644 "$here/packaging/mailboxd.service" "$stage/lib/systemd/system/mailboxd.service"
install -m 0644 "$here/packaging/mailboxd.toml" "$stage/etc/mailbox/mailboxd.toml"
for doc in README.md docs/OPERATIONS.md docs/SECURITY.md docs/PROTOCOL.md; do
  [[ -f $here/$doc ]] && install -m 0644 "$here/$doc" "$stage/usr/share/doc/mailbox/"
done

# Man pages from --help.
help2man --no-info --no-discard-stderr --version-string="$version" \
  --name="a durable, replicated mailbox service over Zenoh (one node)" \
  --section=1 "$build_dir/mailboxd" | gzip -9n >"$stage/usr/share/man/man1/mailboxd.1.gz"
help2man --no-info --no-discard-stderr --version-string="$version" \
  --name="client of the mailbox service" \
  --section=1 "$build_dir/mailbox" | gzip -9n >"$stage/usr/share/man/man1/mailbox.1.gz"

# Shared libraries the programs need, as Debian packages.
depends=$(
  for bin in mailboxd mailbox; do ldd "$build_dir/$bin"; done | awk '/=> \// {print $3}' | sort -u |
    while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true; done |
    cut -d: -f1 | sort -u | grep -v '^libc6$' | paste -sd, | sed 's/,/, /g'
)
installed_kib=$(du -sk "$stage" | cut -f1)

cat >"$stage/DEBIAN/control" <<CONTROL
Package: mailbox
Version: $version
Architecture: $arch
Maintainer: Mailbox developers <mailbox@localhost>
Installed-Size: $installed_kib
Depends: libc6, ${depends}
Section: net
Priority: optional
Description: durable, Raft-replicated mailbox service over Eclipse Zenoh
 mailboxd runs one node of a mailbox cluster (an embedded Zenoh router,
 a Raft replica and the service); mailbox is its command-line client.
 The systemd unit mailboxd.service reads /etc/mailbox/mailboxd.toml.
CONTROL
echo "/etc/mailbox/mailboxd.toml" >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = "configure" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
exit 0
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"

deb="$out_dir/mailbox_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
