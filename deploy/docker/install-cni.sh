#!/bin/sh
# Installs the weir-cni plugin on a node. Run by the node-loader DaemonSet's init container, with
# the host's CNI bin directory mounted. Only the plugin: node-loader itself writes the node's
# conflist (05-weir.conflist) once it knows the node's podCIDR, so no runtime calls the plugin
# before node-loader can serve it.
#   install-cni.sh BIN_DIR
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 BIN_DIR" >&2
  exit 2
fi
bin_dir=$1
plugin=$(dirname "$0")/weir-cni

# Write beside the destination, then rename over it: a runtime executing the plugin mid-copy
# runs the old file or the new one, never half of either.
mkdir -p "$bin_dir"
tmp="$bin_dir/.weir-cni.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cp "$plugin" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$bin_dir/weir-cni"
echo "installed $bin_dir/weir-cni"
