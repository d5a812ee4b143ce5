#!/usr/bin/env bash
# Installs what the project needs and is missing: Debian packages (libraft-dev
# from bookworm-backports), the Rust toolchain check, and the project-local
# Python virtualenv with pinned packages. Idempotent and quick when all is there.
#
# The backports suite is derived from the machine's own Debian source entry,
# so no mirror host is ever written into this repository.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

debian_packages=(
  build-essential cmake ninja-build pkg-config git
  libuv1-dev libraft-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libsystemd-dev libxxhash-dev libssl-dev openssl
  clang-14 libclang-rt-14-dev
  python3-venv
  iproute2 iputils-ping nftables
  # Operability (issue 14): the metrics/status HTTP port, the config file,
  # the status page's browser test, man pages and the Debian package.
  libcpp-httplib-dev libtomlplusplus-dev chromium help2man dpkg-dev fakeroot
)
required_raft_version="0.22"

missing_packages() {
  local missing=()
  for p in "${debian_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null | grep -q "^${required_raft_version}"; then :; else
    [[ " ${missing[*]} " == *" libraft-dev "* ]] || missing+=(libraft-dev)
  fi
  if ((${#missing[@]})); then printf '%s\n' "${missing[@]}"; fi
}

add_backports_source() {
  # Already present?
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: the URIs line of the stanza whose Suites include "bookworm".
    uri=$(awk '
      /^URIs:/ {u=$2}
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i=="bookworm") { print u; exit } }
    ' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  if [[ -z $uri ]]; then
    echo "install-deps: cannot find the machine's Debian bookworm source entry" >&2
    exit 1
  fi
  echo "install-deps: adding bookworm-backports from the machine's own Debian source"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  add_backports_source
  $SUDO apt-get update -qq
  # libraft-dev only from backports (bookworm's 0.15 has Raft safety bugs).
  others=()
  for p in "${missing[@]}"; do [[ $p == libraft-dev ]] || others+=("$p"); done
  if ((${#others[@]})); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${others[@]}"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports libraft-dev libraft0 libuv1-dev
  v=$(dpkg-query -W -f='${Version}' libraft-dev)
  if [[ $v != ${required_raft_version}* ]]; then
    echo "install-deps: libraft-dev is $v, need ${required_raft_version}.x" >&2
    exit 1
  fi
fi

# Rust toolchain: cargo must exist (the machine image provides rustup's).
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then :; else
    echo "install-deps: installing cargo from Debian"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends cargo rustc
  fi
fi

# Go builds the history checker of the chaos test (tools/checker, Porcupine);
# the machine image has one in /usr/local/go, else Debian's backports have it.
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go && ! -x /usr/lib/go-1.23/bin/go ]]; then
  echo "install-deps: installing Go 1.23 from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.23-go
fi

# Python virtualenv for the interop tests, pinned.
venv="$here/.venv"
req="$here/tests/interop/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "install-deps: preparing $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req"
  echo "$want" >"$stamp"
fi
