#!/bin/sh
# Installs the weir-cni plugin and Weir's CNI network configuration on a node. Run by the
# node-loader DaemonSet's init container, with the host's CNI directories mounted.
#   install-cni.sh BIN_DIR CONF_DIR CONF_NAME CONFLIST
set -eu

if [ $# -ne 4 ]; then
  echo "usage: $0 BIN_DIR CONF_DIR CONF_NAME CONFLIST" >&2
  exit 2
fi
bin_dir=$1
conf_dir=$2
conf_name=$3
conflist=$4
plugin=$(dirname "$0")/weir-cni

# Write beside the destination, then rename over it: a runtime executing the plugin or reading
# the directory mid-copy sees the old file or the new one, never half of either. The temporary
# name starts with a dot and has no .conf/.conflist suffix, so no runtime loads it.
install_file() {
  tmp="$(dirname "$2")/.$(basename "$2").tmp.$$"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

mkdir -p "$bin_dir" "$conf_dir"
install_file "$plugin" "$bin_dir/weir-cni" 0755
install_file "$conflist" "$conf_dir/$conf_name" 0644
echo "installed $bin_dir/weir-cni and $conf_dir/$conf_name"
