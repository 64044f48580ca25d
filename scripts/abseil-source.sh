#!/usr/bin/env bash
# Prints the path of Debian's own Abseil source tree, the source package of the installed
# libabsl-dev version with Debian's patches applied, for a build of Abseil with the project's
# sanitizer flags (-DDTM_ABSEIL_SOURCE=..., the TSan variant of scripts/test.sh).
#
# Downloaded once with apt (so the files are checked against the archive's signed Sources
# index) into a cache outside the checkout, reused by every clone on this machine:
#   ${DTM_CACHE_DIR:-/var/cache/dtm-cpp}/abseil-<version>
# Needs dpkg-dev (dpkg-source extracts and patches the tree). Progress goes to stderr; stdout
# has only the path.
set -euo pipefail
version=$(dpkg-query -W -f='${Version}' libabsl-dev)
cache=${DTM_CACHE_DIR:-/var/cache/dtm-cpp}
dest="$cache/abseil-${version//:/_}"
if [ -f "$dest/CMakeLists.txt" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.abseil-XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt downloads as the _apt user, which must reach the dirs below
echo "abseil-source: fetching Debian's abseil $version source package into $dest" >&2

# A private apt configuration: the machine's Debian sources as deb-src, its own lists and
# cache, so neither the machine's apt state nor its sources.list is touched.
mkdir -p "$work/etc/sources.list.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
  sed 's/^Types: deb$/Types: deb-src/' "$src" >"$work/etc/sources.list.d/debian.sources"
else
  # Older layout: one-line sources in /etc/apt/sources.list.
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$work/etc/sources.list.d/debian.list"
fi
# As root apt downloads as the _apt user; it must be able to write where the files go.
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  chown -R _apt "$work/lists" "$work/cache" "$work/src"
fi
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/etc/sources.list.d"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
apt-get -qq "${apt_opts[@]}" update >&2
(cd "$work/src" && apt-get -q "${apt_opts[@]}" source "abseil=$version" >&2)

tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'abseil-*' | head -n 1)
if [ -z "$tree" ] || [ ! -f "$tree/CMakeLists.txt" ]; then
  echo "abseil-source: no extracted source tree in $work/src" >&2
  exit 1
fi
chown -R "$(id -u):$(id -g)" "$tree"
# Another run may have put a complete tree there meanwhile (and be building from it): keep
# that one. Only a broken leftover is replaced.
[ -f "$dest/CMakeLists.txt" ] || rm -rf "$dest"
mv -T "$tree" "$dest" 2>/dev/null || [ -f "$dest/CMakeLists.txt" ]
echo "$dest"
