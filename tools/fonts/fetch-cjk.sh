#!/usr/bin/env bash
# Fetches the CJK font collection the PDF summaries draw Chinese, Japanese and Korean with
# (Noto Sans CJK Regular, SIL OFL 1.1) from Debian's fonts-noto-cjk at a pinned version, checks
# the package's and the font's SHA-256, and puts NotoSansCJK-Regular.ttc into DIR.
#
#   tools/fonts/fetch-cjk.sh DIR
#
# `make fonts` runs it for target/fonts/ (tests, the local stack, the benchmark); `make package`
# for the fonts layer's directory (dist/layers/fonts/fonts/, mounted at /opt/fonts in Lambda).
# The .deb (54 MiB) is kept in ~/.cache/atlassian-bridge/ and checked again on every use.
set -euo pipefail

VERSION="1:20220127+repack1-1"
DEB="fonts-noto-cjk_1%3a20220127+repack1-1_all.deb"
DEB_SHA256="4a2515eb6db3978b897fef9709ed0d2b1f4c6c4df4d83d6c4ef65f71f1b1f502"
TTC="usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
TTC_SHA256="b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a"

out=${1:?usage: fetch-cjk.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -f "$out/NotoSansCJK-Regular.ttc" ]] && echo "$TTC_SHA256  $out/NotoSansCJK-Regular.ttc" | sha256sum -c --quiet 2>/dev/null; then
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/atlassian-bridge"
mkdir -p "$cache"
if ! { [[ -f "$cache/$DEB" ]] && echo "$DEB_SHA256  $cache/$DEB" | sha256sum -c --quiet 2>/dev/null; }; then
  rm -f "$cache/$DEB"
  # apt-get download writes into the working directory; as root it warns that it cannot drop
  # to the _apt user there, which is harmless.
  (cd "$cache" && { apt-get download -q "fonts-noto-cjk=$VERSION" 2>/dev/null ||
                    { apt-get update -qq && apt-get download -q "fonts-noto-cjk=$VERSION"; }; })
  echo "$DEB_SHA256  $cache/$DEB" | sha256sum -c --quiet
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "$cache/$DEB" | tar -x -C "$work" "./$TTC"
echo "$TTC_SHA256  $work/$TTC" | sha256sum -c --quiet
mv "$work/$TTC" "$out/NotoSansCJK-Regular.ttc.part"
mv "$out/NotoSansCJK-Regular.ttc.part" "$out/NotoSansCJK-Regular.ttc"
echo "fonts: $out/NotoSansCJK-Regular.ttc (fonts-noto-cjk $VERSION, sha256 ok)"
