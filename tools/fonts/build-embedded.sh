#!/usr/bin/env bash
# Rebuilds the fonts compiled into the functions (shared/assets/fonts/Noto*.ttf) from their
# sources and checks them against tools/fonts/SHA256SUMS, so a reviewer can confirm that the
# committed files are the published ones:
# - Noto Sans Arabic, Hebrew, Devanagari and Thai (regular, bold): Debian's fonts-noto-core
#   20201225-1, unchanged;
# - Noto Emoji (monochrome outlines): npm's @fontsource/noto-emoji 5.3.2, whose twelve WOFF
#   subsets merge_emoji.py merges into one TrueType font (fontTools, pinned in requirements.txt).
# All are under the SIL Open Font License 1.1 (shared/assets/fonts/OFL.txt), which allows
# embedding them in documents.
#
#   tools/fonts/build-embedded.sh [OUT_DIR]     (default: a temporary directory, then compared)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

CORE_VERSION="20201225-1"
CORE_DEB="fonts-noto-core_20201225-1_all.deb"
CORE_SHA256="58f4f0bb6720f919f92096b3508e1412a0f1544424ade6c5b5bf1eb694dd64ba"
EMOJI_NPM="@fontsource/noto-emoji@5.3.2"
EMOJI_TGZ="fontsource-noto-emoji-5.3.2.tgz"
EMOJI_SHA256="1fe49bb2cf7c2d78f93c0a69b6a431dcfd0d585b7831eba87fae6888ccf8d373"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${1:-$work/out}
mkdir -p "$out"

cd "$work"
apt-get download -q "fonts-noto-core=$CORE_VERSION" 2>/dev/null ||
  { apt-get update -qq && apt-get download -q "fonts-noto-core=$CORE_VERSION"; }
echo "$CORE_SHA256  $CORE_DEB" | sha256sum -c --quiet
dpkg-deb -x "$CORE_DEB" core
for f in NotoSansArabic NotoSansHebrew NotoSansDevanagari NotoSansThai; do
  for w in Regular Bold; do cp "core/usr/share/fonts/truetype/noto/$f-$w.ttf" "$out/"; done
done

npm pack --silent "$EMOJI_NPM" >/dev/null
echo "$EMOJI_SHA256  $EMOJI_TGZ" | sha256sum -c --quiet
tar xzf "$EMOJI_TGZ"
python3 -m venv venv
venv/bin/python -m pip install -q -r "$here/requirements.txt"
venv/bin/python "$here/merge_emoji.py" package "$out/NotoEmoji-Regular.ttf"

(cd "$out" && sha256sum -c --quiet "$here/SHA256SUMS")
echo "every font matches tools/fonts/SHA256SUMS"
if [[ $# -eq 0 ]]; then
  for f in $(cut -d' ' -f3 "$here/SHA256SUMS"); do cmp -s "$out/$f" "$repo/shared/assets/fonts/$f" || { echo "differs: $f"; exit 1; }; done
  echo "and shared/assets/fonts/ holds exactly them"
fi
