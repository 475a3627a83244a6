#!/usr/bin/env bash
# demo.sh: run examples/hello in a Keep through a real containerd, then leave
# nothing behind. `make demo` runs it after building bin/.
#
# It installs containerd and runc with apt-get when they are missing, starts a
# private containerd (its own root, state and socket under a temp dir, our
# shim first on its PATH), packages examples/hello as an OCI image with
# `enarx package`, runs it with `ctr run --rm --runtime io.containerd.enarx.v1`,
# shows the enarx.dev/* labels the shim set on a container, gets a Keep a
# certificate from an enarx steward, serves HTTPS from a Keep (examples/https,
# TLS terminated by the Keep) and checks it with `enarx verify --tls`, and
# stops the daemon.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/bin"
runtime=io.containerd.enarx.v1
image=docker.io/enarx/hello:demo
image_https=docker.io/enarx/https:demo
ns=enarx-demo

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v runc >/dev/null; then
	say "installing containerd and runc (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq containerd runc >/dev/null
fi
for b in containerd-shim-enarx-v1 enarx-shim enarx-keep enarx; do
	[[ -x $bin/$b ]] || { echo "demo: $bin/$b is missing: run 'make build' (or 'make demo')" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/enarx-demo.XXXXXX)
pid=""
spid=""
cleanup() {
	set +e
	if [[ -n $spid ]]; then
		kill "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
	fi
	if [[ -n $pid ]]; then
		for c in $(ctr --address "$dir/c.sock" -n $ns containers ls -q 2>/dev/null); do
			ctr --address "$dir/c.sock" -n $ns tasks kill -s SIGKILL "$c" >/dev/null 2>&1
			ctr --address "$dir/c.sock" -n $ns tasks rm -f "$c" >/dev/null 2>&1
			ctr --address "$dir/c.sock" -n $ns containers rm "$c" >/dev/null 2>&1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	grep -o " $dir[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/c.sock"
[ttrpc]
  address = "$dir/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML

say "starting a private containerd ($(containerd --version | awk '{print $3}')) in $dir"
PATH="$bin:$PATH" containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
pid=$!
ctr="ctr --address $dir/c.sock -n $ns"
for _ in $(seq 100); do $ctr version >/dev/null 2>&1 && break; sleep 0.1; done
$ctr version >/dev/null || { echo "demo: containerd did not start:" >&2; tail "$dir/containerd.log" >&2; exit 1; }

say "building examples/hello for WASI (GOOS=wasip1 GOARCH=wasm)"
(cd "$top" && GOOS=wasip1 GOARCH=wasm go build -o "$dir/hello.wasm" ./examples/hello)

say "packaging it as an OCI image: enarx package"
"$bin/enarx" package --name $image -o "$dir/hello.tar" "$dir/hello.wasm"
$ctr images import "$dir/hello.tar"

say "ctr run --rm --runtime $runtime $image hello"
$ctr run --rm --runtime $runtime $image hello

say "starting an attestation service: enarx steward on loopback"
# This machine has no TEE, so its Keeps run on the nil backend: the policy
# accepts their evidence only because it says allow_insecure, and every
# assertion then says insecure. On an SEV-SNP or TDX guest, drop that line.
cat >"$dir/policy.toml" <<TOML
allow_insecure = true
reference_values = "$bin/reference-values.json"
TOML
"$bin/enarx" steward --data-dir "$dir/steward" --listen 127.0.0.1:0 --policy "$dir/policy.toml" >"$dir/steward.url" 2>"$dir/steward.log" &
spid=$!
for _ in $(seq 100); do [[ -s $dir/steward.url ]] && break; sleep 0.1; done
steward=$(head -n1 "$dir/steward.url")
[[ $steward == http://* ]] || { echo "demo: enarx steward did not start:" >&2; cat "$dir/steward.log" >&2; exit 1; }
echo "  $steward"

# The node policy lists the stewards a Keep may use, by name, with their CA
# pinned; a container chooses one by name. Plain http only on loopback.
cat >"$dir/node-policy.toml" <<TOML
backend = "auto"
require_tee = false

[stewards.demo]
url = "$steward"
ca = "$dir/steward/ca.crt"
insecure_http = true
TOML

say "ctr run -d --runtime-config-path node-policy.toml --annotation enarx.dev/steward=demo: the Keep attests and gets a certificate"
$ctr run -d --runtime $runtime --runtime-config-path "$dir/node-policy.toml" --annotation "enarx.dev/steward=demo" $image hello-labels >/dev/null
$ctr containers info hello-labels | sed -n '/"Labels": {/,/}/p' | grep '"enarx.dev/' | sed 's/^ */  /'

say "enarx verify: what the Keep's evidence proves (reference values from make)"
evidence=$($ctr containers info hello-labels | sed -n 's/.*"enarx.dev\/evidence.path": "\(.*\)".*/\1/p')
"$bin/enarx" verify --policy "$dir/policy.toml" "$evidence"
for _ in $(seq 100); do [[ $($ctr tasks ls | awk '$1=="hello-labels"{print $3}') == STOPPED ]] && break; sleep 0.1; done
$ctr tasks rm hello-labels >/dev/null
$ctr containers rm hello-labels

say "a Keep that serves HTTPS: a listen socket declared by annotation, TLS terminated by the Keep"
(cd "$top" && GOOS=wasip1 GOARCH=wasm go build -o "$dir/https.wasm" ./examples/https)
"$bin/enarx" package --name $image_https -o "$dir/https.tar" "$dir/https.wasm"
$ctr images import "$dir/https.tar" >/dev/null
port=$((20000 + RANDOM % 20000))
echo "  ctr run -d --net-host --runtime-config-path node-policy.toml --annotation enarx.dev/steward=demo --annotation enarx.dev/listen.https=tls://127.0.0.1:$port $image_https hello-https"
$ctr run -d --net-host --runtime $runtime --runtime-config-path "$dir/node-policy.toml" --annotation "enarx.dev/steward=demo" \
	--annotation "enarx.dev/listen.https=tls://127.0.0.1:$port" $image_https hello-https >/dev/null
$ctr containers info hello-https | grep -E '"enarx.dev/(sockets|tls.identity|certificate.issuer)"' | sed 's/^ */  /'

say "enarx verify --tls: a client checks the Keep (steward CA, assertions, workload) before trusting it"
workload=$($ctr containers info hello-https | sed -n 's/.*"enarx.dev\/workload.digest": "\(.*\)".*/\1/p')
"$bin/enarx" verify --tls "127.0.0.1:$port" --steward-ca "$dir/steward/ca.crt" --workload "$workload"
$ctr tasks kill -s SIGKILL hello-https >/dev/null
for _ in $(seq 100); do [[ $($ctr tasks ls | awk '$1=="hello-https"{print $3}') == STOPPED ]] && break; sleep 0.1; done
$ctr tasks rm hello-https >/dev/null 2>&1
$ctr containers rm hello-https

say "done: stopping containerd and removing $dir"
