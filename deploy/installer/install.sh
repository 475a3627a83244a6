#!/bin/sh
# install.sh: install containerd-shim-enarx on a Kubernetes node.
#
# Runs in a privileged pod of deploy/installer/daemonset.yaml, with the host's
# root filesystem mounted at $HOST_ROOT (default /host) and hostPID, so that
# PID 1 is the host's init. It
#
#   1. copies containerd-shim-enarx-v1, enarx-shim (its server, which it runs
#      from beside it), enarx-keep (the runtime binary the shim runs Keeps
#      from, beside it) and enarx to /usr/local/bin and the
#      reference values to /usr/local/share/enarx on the host (as `make install`);
#   2. writes the node policy /etc/enarx/policy.toml if the host has none
#      (an existing policy is never changed);
#   3. registers the `enarx` runtime handler in containerd's config, with the
#      snippet matching the config's version (2: containerd 1.6/1.7;
#      3 or later: containerd 2.x), unless a runtime named `enarx` is there;
#   4. restarts containerd (systemd) when it changed the config.
#
# Running it again changes nothing. It labels no node: that is the
# administrator's decision (docs/kubernetes.md).
#
# Environment:
#   HOST_ROOT          where the host's / is mounted (default /host)
#   ENARX_SRC          where this image keeps the files (default: this script's directory)
#   CONTAINERD_CONFIG  containerd's config on the host (default /etc/containerd/config.toml)
#   CONTAINERD_CONFIG_VERSION  2 or 3: use this snippet when the config has no
#                      `version` line, or does not exist yet
#   ENARX_REQUIRE_TEE  true (default) or false: require_tee of a policy written here
#   RESTART_CONTAINERD auto (default: restart through systemd if the config
#                      changed) or never
#   NSENTER            the nsenter command (tests replace it)
#   CONTAINERD         command prefix that runs the host's containerd
#                      (default: chroot $HOST_ROOT containerd)

set -eu

HOST_ROOT=${HOST_ROOT:-/host}
ENARX_SRC=${ENARX_SRC:-$(cd "$(dirname "$0")" && pwd)}
CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
CONTAINERD_CONFIG_VERSION=${CONTAINERD_CONFIG_VERSION:-}
ENARX_REQUIRE_TEE=${ENARX_REQUIRE_TEE:-true}
RESTART_CONTAINERD=${RESTART_CONTAINERD:-auto}
NSENTER=${NSENTER:-nsenter}
CONTAINERD=${CONTAINERD:-chroot $HOST_ROOT containerd}

BIN_DIR=/usr/local/bin
SHARE_DIR=/usr/local/share/enarx
POLICY=/etc/enarx/policy.toml

log() { printf 'enarx-install: %s\n' "$*"; }
die() { printf 'enarx-install: error: %s\n' "$*" >&2; exit 1; }

[ -d "$HOST_ROOT" ] || die "$HOST_ROOT does not exist: mount the host's / there (hostPath volume, path: /)"
for f in containerd-shim-enarx-v1 enarx-shim enarx-keep enarx reference-values.json policy.toml config-v2.toml.snippet config-v3.toml.snippet; do
	[ -f "$ENARX_SRC/$f" ] || die "$ENARX_SRC/$f is missing from the installer image"
done
case $ENARX_REQUIRE_TEE in
true | false) ;;
*) die "ENARX_REQUIRE_TEE=$ENARX_REQUIRE_TEE: want true or false" ;;
esac

# put SRC MODE DEST installs SRC at DEST on the host unless it is there
# already. It copies to a temporary name and renames, so that a shim binary
# that containerd is executing is replaced, not rewritten ("text file busy").
put() {
	dest=$HOST_ROOT$3
	if cmp -s "$1" "$dest"; then
		log "$3 is up to date"
		return 0
	fi
	mkdir -p "$(dirname "$dest")"
	cp "$1" "$dest.enarx-new"
	chmod "$2" "$dest.enarx-new"
	mv -f "$dest.enarx-new" "$dest"
	log "installed $3"
}

# The runtime binary and the shim's server first: a new shim runs its server
# and Keeps from the enarx-shim and enarx-keep beside it, so it must not find
# old ones there.
put "$ENARX_SRC/enarx-keep" 0755 "$BIN_DIR/enarx-keep"
put "$ENARX_SRC/enarx-shim" 0755 "$BIN_DIR/enarx-shim"
put "$ENARX_SRC/containerd-shim-enarx-v1" 0755 "$BIN_DIR/containerd-shim-enarx-v1"
put "$ENARX_SRC/enarx" 0755 "$BIN_DIR/enarx"
put "$ENARX_SRC/reference-values.json" 0644 "$SHARE_DIR/reference-values.json"

# The policy belongs to the node's administrator once it exists.
if [ -e "$HOST_ROOT$POLICY" ]; then
	log "$POLICY exists: left as it is"
else
	mkdir -p "$(dirname "$HOST_ROOT$POLICY")"
	sed "s/^require_tee = .*/require_tee = $ENARX_REQUIRE_TEE/" "$ENARX_SRC/policy.toml" >"$HOST_ROOT$POLICY.enarx-new"
	chmod 0644 "$HOST_ROOT$POLICY.enarx-new"
	mv -f "$HOST_ROOT$POLICY.enarx-new" "$HOST_ROOT$POLICY"
	log "wrote $POLICY (require_tee = $ENARX_REQUIRE_TEE)"
fi

# config_version FILE prints the top-level `version` of a containerd config:
# the first `version = N` before the first table header, or nothing.
config_version() {
	awk '/^[[:space:]]*\[/ { exit }
	     /^[[:space:]]*version[[:space:]]*=/ { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[^0-9].*$/, "", v); print v; exit }' "$1"
}

# snippet_for VERSION prints the snippet file for a config version.
snippet_for() {
	case $1 in
	2) echo "$ENARX_SRC/config-v2.toml.snippet" ;;
	[3-9] | [1-9][0-9]) echo "$ENARX_SRC/config-v3.toml.snippet" ;;
	*) die "containerd config version $1 is not supported: migrate it (containerd config migrate, containerd 2.x) or write a version = 2 config (containerd 1.6/1.7)" ;;
	esac
}

cfg=$HOST_ROOT$CONTAINERD_CONFIG
config_changed=false
if [ ! -e "$cfg" ]; then
	# An absent config means containerd's defaults. Start from them: a config
	# holding only our runtime would drop containerd 1.6's runc runtime.
	log "$CONTAINERD_CONFIG does not exist: writing containerd's default config"
	mkdir -p "$(dirname "$cfg")"
	# shellcheck disable=SC2086 # CONTAINERD is a command prefix
	$CONTAINERD config default >"$cfg.enarx-new" ||
		die "could not run \`containerd config default\` on the host ($CONTAINERD): create $CONTAINERD_CONFIG yourself"
	mv -f "$cfg.enarx-new" "$cfg"
	config_changed=true
fi

if grep -Eq "^[[:space:]]*\[[^]]*\.runtimes\.[\"']?enarx[\"']?\][[:space:]]*(#.*)?$" "$cfg"; then
	log "$CONTAINERD_CONFIG already has a runtime named enarx: left as it is"
else
	version=$(config_version "$cfg")
	if [ -z "$version" ]; then
		[ -n "$CONTAINERD_CONFIG_VERSION" ] ||
			die "$CONTAINERD_CONFIG has no \`version\` line (a version 1 config): set CONTAINERD_CONFIG_VERSION=2 (containerd 1.6/1.7) or 3 (2.x) after migrating it, or add the runtime yourself (deploy/containerd/)"
		version=$CONTAINERD_CONFIG_VERSION
	fi
	snippet=$(snippet_for "$version")
	cp -p "$cfg" "$cfg.enarx-backup"
	cat "$cfg" "$snippet" >"$cfg.enarx-new"
	mv -f "$cfg.enarx-new" "$cfg"
	config_changed=true
	log "registered the enarx runtime in $CONTAINERD_CONFIG (config version $version, $(basename "$snippet")); the previous config is $CONTAINERD_CONFIG.enarx-backup"
fi
if grep -Eq '^[[:space:]]*disabled_plugins[[:space:]]*=.*"(io\.containerd\.grpc\.v1\.)?cri"' "$cfg"; then
	log "warning: $CONTAINERD_CONFIG disables the CRI plugin (disabled_plugins): Kubernetes cannot use this containerd"
fi

if [ "$config_changed" = false ]; then
	log "containerd's config is unchanged: no restart"
elif [ "$RESTART_CONTAINERD" = never ]; then
	log "RESTART_CONTAINERD=never: restart containerd yourself for the enarx runtime to appear"
elif [ -d "$HOST_ROOT/run/systemd/system" ]; then
	log "restarting containerd (systemctl restart containerd); running containers keep running"
	$NSENTER --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd ||
		die "systemctl restart containerd failed on the host: see journalctl -u containerd there"
else
	log "the host does not run systemd: restart containerd yourself for the enarx runtime to appear"
fi
log "done; check this node with: enarx platform --policy $POLICY (on the node)"
