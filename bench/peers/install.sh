#!/usr/bin/env bash
# Installs the peers `make bench` runs beside mailbox, and quickly does
# nothing when they are there (called by `make bench`, not by `make test`):
#
#   - nats-server and rabbitmq-server (with Erlang) from Debian; Java and
#     Maven for PerfTest; the system services are not started.
#   - nats-server (a release with `sync_interval`, which Debian's 2.9 lacks)
#     and the `nats` CLI (for `nats bench`), pinned by bench/peers/go/go.mod
#     (its `tool` block) and built with `go install tool`.
#   - RabbitMQ PerfTest and its runtime classpath, pinned by
#     bench/peers/perftest/pom.xml, copied with Maven's dependency plugin.
#   - matplotlib into the project's .venv, pinned by bench/requirements.txt.
#
# The Go and Java tools go to $MAILBOX_TOOLS_DIR (~/.cache/mailbox/tools),
# outside the clone.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=${MAILBOX_TOOLS_DIR:-$HOME/.cache/mailbox/tools}
mkdir -p "$tools/bin"
say() { echo "bench/peers/install: $*"; }
sudo=
[[ $(id -u) == 0 ]] || sudo=sudo

# ---- Debian packages ----
missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for pkg in nats-server rabbitmq-server; do installed "$pkg" || missing+=("$pkg"); done
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  # Keep the packages' maintainer scripts from starting system-wide servers
  # (the suite starts its own on loopback), unless a policy is already set.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    made_policy=1
  fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -z $made_policy ]] || $sudo rm -f "$policy"
fi

# ---- NATS: nats-server and the nats CLI from the Go module proxy ----
go_bin=$(command -v go || true)
[[ -n $go_bin ]] || go_bin=/usr/local/go/bin/go
want_server=$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2 }' bench/peers/go/go.mod)
want_cli=$(awk '$1 == "github.com/nats-io/natscli" { print $2 }' bench/peers/go/go.mod)
have_server=$("$tools/bin/nats-server" --version 2>/dev/null | awk '{ print $2 }' || true)
have_cli=$("$tools/bin/nats" --version 2>/dev/null || true)
if [[ $have_server != "$want_server" || $have_cli != "$want_cli" ]]; then
  if [[ ! -x $go_bin ]]; then
    echo "bench/peers/install: Go 1.25 or newer is needed to build nats-server $want_server and natscli $want_cli" >&2
    exit 1
  fi
  say "go install nats-server $want_server and natscli $want_cli into $tools/bin"
  (cd bench/peers/go && GOBIN="$tools/bin" GOFLAGS=-mod=readonly "$go_bin" install tool)
fi

# ---- RabbitMQ PerfTest from Maven Central ----
perftest_version=$(sed -n 's:.*<perftest.version>\(.*\)</perftest.version>.*:\1:p' bench/peers/perftest/pom.xml)
if [[ ! -f $tools/perftest/lib/perf-test-$perftest_version.jar ]]; then
  say "PerfTest $perftest_version and its classpath into $tools/perftest/lib"
  rm -rf "$tools/perftest/lib"
  log=$(mktemp)
  if ! mvn -q -B -f bench/peers/perftest/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tools/perftest/lib" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi

# ---- matplotlib in the project venv ----
if [[ ! -x .venv/bin/python ]]; then
  echo "bench/peers/install: .venv is missing; run scripts/install-deps.sh (make build) first" >&2
  exit 1
fi
want_mpl=$(sed -n 's/^matplotlib==//p' bench/requirements.txt)
have_mpl=$(.venv/bin/python -c 'import matplotlib; print(matplotlib.__version__)' 2>/dev/null || true)
if [[ $have_mpl != "$want_mpl" ]]; then
  say "pip install -r bench/requirements.txt"
  .venv/bin/pip install -q -r bench/requirements.txt
fi
