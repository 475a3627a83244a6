#!/bin/sh
# install_test.sh: run install.sh against temporary directories standing in
# for a node's root filesystem, one per kind of containerd config, and check
# what it writes and that a second run changes nothing.
#
#   sh deploy/installer/install_test.sh
#
# Needs no root and touches nothing outside a temporary directory. When
# containerd binaries are at hand (CONTAINERD_V1, CONTAINERD_V2: paths to a
# 1.6/1.7 and a 2.x `containerd`; default: `containerd` on PATH and the one
# `make deps` builds), it also has them parse the result (`config dump`).

# `cond && pass || fail`: pass only prints, it cannot fail.
# shellcheck disable=SC2015

set -eu

here=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$here")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

CONTAINERD_V1=${CONTAINERD_V1:-$(command -v containerd || true)}
CONTAINERD_V2=${CONTAINERD_V2:-$HOME/.cache/containerd-shim-enarx/containerd-v2.4.2/containerd}

failures=0
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }
pass() { printf 'ok:   %s\n' "$*"; }

# The installer image's /opt/enarx, with stand-ins for the binaries.
src=$tmp/src
mkdir -p "$src"
printf '#!/bin/sh\necho shim\n' >"$src/containerd-shim-enarx-v1"
printf '#!/bin/sh\necho server\n' >"$src/enarx-shim"
printf '#!/bin/sh\necho keep\n' >"$src/enarx-keep"
printf '#!/bin/sh\necho enarx\n' >"$src/enarx"
echo '{}' >"$src/reference-values.json"
cp "$deploy/policy.toml" "$deploy/containerd/config-v2.toml.snippet" "$deploy/containerd/config-v3.toml.snippet" "$here/install.sh" "$src/"

# A fake nsenter that records its calls instead of restarting anything.
printf '#!/bin/sh\necho "$*" >>"%s/nsenter.calls"\n' "$tmp" >"$tmp/nsenter"
chmod +x "$tmp/nsenter"

# newhost NAME [CONFIG-CONTENT]: a fake host root with systemd running.
newhost() {
	h=$tmp/$1
	mkdir -p "$h/run/systemd/system" "$h/etc/containerd"
	if [ $# -gt 1 ]; then printf '%s\n' "$2" >"$h/etc/containerd/config.toml"; fi
	echo "$h"
}

# install HOST [VAR=VALUE...]: run install.sh for HOST; its output goes to HOST.log.
install() {
	h=$1
	shift
	env HOST_ROOT="$h" ENARX_SRC="$src" NSENTER="$tmp/nsenter" "$@" sh "$src/install.sh" >>"$h.log" 2>&1
}

calls() { if [ -f "$tmp/nsenter.calls" ]; then wc -l <"$tmp/nsenter.calls" | tr -d ' '; else echo 0; fi; }

# check_host NAME HOST SNIPPET-PLUGIN: the files are in place, the config has
# the runtime once, and a second run changes nothing and restarts nothing.
check_host() {
	name=$1 h=$2 plugin=$3
	for f in usr/local/bin/containerd-shim-enarx-v1 usr/local/bin/enarx-shim usr/local/bin/enarx-keep usr/local/bin/enarx; do
		[ -x "$h/$f" ] || fail "$name: /$f not installed"
	done
	[ -f "$h/usr/local/share/enarx/reference-values.json" ] || fail "$name: reference values not installed"
	grep -q '^require_tee = true' "$h/etc/enarx/policy.toml" || fail "$name: policy not written"
	n=$(grep -c "^\[plugins.\"$plugin\".containerd.runtimes.enarx\]" "$h/etc/containerd/config.toml" || true)
	[ "$n" = 1 ] || fail "$name: want one [plugins.\"$plugin\"...runtimes.enarx] table, found $n"
	grep -q 'ConfigPath = "/etc/enarx/policy.toml"' "$h/etc/containerd/config.toml" || fail "$name: no ConfigPath"
	before=$(calls)
	cp "$h/etc/containerd/config.toml" "$tmp/before.toml"
	install "$h" || fail "$name: second run failed (see $h.log)"
	cmp -s "$tmp/before.toml" "$h/etc/containerd/config.toml" || fail "$name: second run changed the config"
	[ "$(calls)" = "$before" ] || fail "$name: second run restarted containerd"
	pass "$name"
}

# dump BINARY HOST: the containerd at BINARY accepts the config and sees ConfigPath.
dump() {
	if [ -x "$1" ]; then
		if "$1" --config "$2/etc/containerd/config.toml" config dump 2>/dev/null | grep -q "ConfigPath = .*/etc/enarx/policy.toml"; then
			pass "$("$1" --version | awk '{print $3}') parses $(basename "$2")'s config and sees the enarx runtime"
		else
			fail "$1 does not accept $(basename "$2")'s config"
		fi
	fi
}

# containerd 1.6/1.7: version = 2.
if [ -x "$CONTAINERD_V1" ]; then
	h=$(newhost v2 "$("$CONTAINERD_V1" config default)")
else
	h=$(newhost v2 'version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"')
fi
before=$(calls)
install "$h" || fail "v2: install failed (see $h.log)"
[ "$(calls)" = $((before + 1)) ] || fail "v2: containerd not restarted once"
grep -q -- '--target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd' "$tmp/nsenter.calls" || fail "v2: wrong restart command"
[ -f "$h/etc/containerd/config.toml.enarx-backup" ] || fail "v2: no backup of the config"
check_host "version 2 config (containerd 1.6/1.7)" "$h" io.containerd.grpc.v1.cri
dump "$CONTAINERD_V1" "$h"

# containerd 2.x: version = 3, and the version = 4 that containerd 2.4 writes.
for v in 3 4; do
	if [ "$v" = 4 ] && [ -x "$CONTAINERD_V2" ]; then
		h=$(newhost v$v "$("$CONTAINERD_V2" config default)")
	else
		h=$(newhost v$v "version = $v")
	fi
	install "$h" || fail "v$v: install failed (see $h.log)"
	check_host "version $v config (containerd 2.x)" "$h" io.containerd.cri.v1.runtime
	dump "$CONTAINERD_V2" "$h"
done

# No config: containerd's defaults, then the runtime.
h=$(newhost absent)
# shellcheck disable=SC2016 # the fake's own $1 and $2
printf '#!/bin/sh\n[ "$1 $2" = "config default" ] && printf "version = 3\\n"\n' >"$tmp/fake-containerd"
chmod +x "$tmp/fake-containerd"
install "$h" CONTAINERD="$tmp/fake-containerd" || fail "absent: install failed (see $h.log)"
check_host "no config (containerd config default first)" "$h" io.containerd.cri.v1.runtime

# A config without a version line is refused unless told which.
h=$(newhost noversion '[plugins.cri]')
if install "$h"; then fail "noversion: accepted a config without version"; else pass "config without version refused"; fi
# shellcheck disable=SC2016 # backquotes of the message
grep -q 'no `version` line' "$h.log" || fail "noversion: message does not say why"
install "$h" CONTAINERD_CONFIG_VERSION=2 || fail "noversion: CONTAINERD_CONFIG_VERSION=2 failed"
grep -q 'runtimes.enarx\]' "$h/etc/containerd/config.toml" && pass "CONTAINERD_CONFIG_VERSION=2 registers the runtime" || fail "noversion: runtime not registered"

# An existing runtime named enarx (written by hand, single quotes) is left alone.
h=$(newhost existing "version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'enarx']
  runtime_type = 'io.containerd.enarx.v1'")
before=$(calls)
install "$h" || fail "existing: install failed"
[ "$(grep -c enarx "$h/etc/containerd/config.toml")" = 2 ] || fail "existing: config changed"
[ "$(calls)" = "$before" ] || fail "existing: containerd restarted"
pass "a hand-written enarx runtime is left alone, no restart"

# An existing policy is kept; ENARX_REQUIRE_TEE applies only to a new one.
h=$(newhost policy "version = 2")
mkdir -p "$h/etc/enarx"
echo 'backend = "nil"' >"$h/etc/enarx/policy.toml"
install "$h" ENARX_REQUIRE_TEE=false || fail "policy: install failed"
[ "$(cat "$h/etc/enarx/policy.toml")" = 'backend = "nil"' ] && pass "an existing policy is kept" || fail "policy: overwritten"
h=$(newhost notee "version = 2")
install "$h" ENARX_REQUIRE_TEE=false || fail "notee: install failed"
grep -q '^require_tee = false' "$h/etc/enarx/policy.toml" && pass "ENARX_REQUIRE_TEE=false writes require_tee = false" || fail "notee: policy says $(grep require_tee "$h/etc/enarx/policy.toml")"

# Without systemd: no restart, a message instead.
h=$(newhost nosystemd "version = 3")
rm -r "$h/run/systemd"
before=$(calls)
install "$h" || fail "nosystemd: install failed"
[ "$(calls)" = "$before" ] || fail "nosystemd: tried systemctl"
grep -q 'does not run systemd: restart containerd yourself' "$h.log" && pass "no systemd: says to restart containerd" || fail "nosystemd: no message"

# An updated shim replaces the old one.
printf '#!/bin/sh\necho shim v2\n' >"$src/containerd-shim-enarx-v1"
install "$h" || fail "update: install failed"
cmp -s "$src/containerd-shim-enarx-v1" "$h/usr/local/bin/containerd-shim-enarx-v1" && pass "a new shim binary replaces the old one" || fail "update: shim not replaced"

if [ "$failures" -gt 0 ]; then
	echo "$failures failure(s)"
	exit 1
fi
echo "PASS"
