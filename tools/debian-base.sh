#!/usr/bin/env bash
# Makes a Debian 12 base image from the Debian mirror this machine's apt uses, and imports it
# into podman under the upstream name, for machines that reach a Debian mirror but no registry.
#
# usage: tools/debian-base.sh [debian:12-slim|debian:12]
#   debian:12-slim: minbase without documentation, man pages and locales (like the upstream
#   slim image); debian:12: minbase with them. Tagged as localhost/<name> and
#   docker.io/library/<name>, so `FROM <name>` builds unchanged. Needs root, mmdebstrap and
#   podman; honours DRGATE_CONTAINERS_DIR like tools/image.sh (tools/container-env.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:-debian:12-slim}
# shellcheck source=tools/container-env.sh
source "$root/tools/container-env.sh"

# The mirror: the deb822 sources of this machine (URIs, Suites, Components of each stanza),
# never a hard-coded host.
sources=/etc/apt/sources.list.d/debian.sources
[[ -r $sources ]] || { echo "debian-base.sh: no $sources" >&2; exit 1; }
mapfile -t lines < <(awk '
  function flush() { if (uris != "") { n = split(suites, s, " "); for (i = 1; i <= n; i++)
                       { m = split(uris, u, " "); for (j = 1; j <= m; j++)
                         print "deb " u[j] " " s[i] " " comps } } uris = ""; suites = ""; comps = "main" }
  BEGIN { comps = "main" }
  /^[[:space:]]*$/ { flush(); next }
  /^URIs:/ { uris = substr($0, 6) } /^Suites:/ { suites = substr($0, 8) }
  /^Components:/ { comps = substr($0, 12) }
  END { flush() }' "$sources" | sed 's/  */ /g')
((${#lines[@]})) || { echo "debian-base.sh: no source in $sources" >&2; exit 1; }

# merged-usr hook: /usr merged by mmdebstrap itself (usr-is-merged), not by usrmerge + perl.
opts=(--variant=minbase --mode=root --format=tar
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
# The same apt settings as this machine where they matter for reaching its mirror (a snapshot
# mirror's Release files are past their Valid-Until); they stay in the image for its builds.
if apt-config dump | grep -q '^Acquire::Check-Valid-Until "false"'; then
  opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
fi
opts+=(--aptopt='APT::Install-Recommends "false"')
if [[ $name == *-slim ]]; then
  for p in doc man info locale lintian linda groff; do
    opts+=(--dpkgopt="path-exclude=/usr/share/$p/*")
  done
  opts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright'
         --dpkgopt='path-include=/usr/share/locale/locale.alias')
fi

work=$(mktemp -d /var/tmp/drgate-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
mmdebstrap "${opts[@]}" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*' \
  bookworm "$work/base.tar" "${lines[@]}" >&2
drgate_engine import --change 'CMD ["/bin/bash"]' "$work/base.tar" "localhost/$name" >/dev/null
drgate_engine tag "localhost/$name" "docker.io/library/$name"
echo "debian-base.sh: $name from ${lines[*]} in $((SECONDS - start)) s" >&2
