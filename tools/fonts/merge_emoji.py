"""Merges the twelve unicode-range subsets of Noto Emoji (monochrome outlines, weight 400) that
npm's @fontsource/noto-emoji ships as WOFF into one TrueType font, byte for byte the same on every
run (the merged font keeps the first subset's timestamps instead of the time of the merge).

    python merge_emoji.py PACKAGE_DIR OUT.ttf      (PACKAGE_DIR: the unpacked npm tarball's package/)
"""

import glob
import io
import sys

from fontTools.merge import Merger
from fontTools.ttLib import TTFont


def main(package: str, out: str) -> None:
    subsets = sorted(glob.glob(f"{package}/files/noto-emoji-*-400-normal.woff"))
    if len(subsets) != 12:
        sys.exit(f"expected the 12 subsets of @fontsource/noto-emoji 5.3.2, found {len(subsets)}")
    ttfs = []
    for path in subsets:
        font = TTFont(path, recalcTimestamp=False)
        font.flavor = None  # WOFF -> plain sfnt
        buffer = io.BytesIO()
        font.save(buffer)
        buffer.seek(0)
        ttfs.append(buffer)
    created, modified = (TTFont(ttfs[0])["head"].created, TTFont(ttfs[0])["head"].modified)
    for b in ttfs:
        b.seek(0)
    merged = Merger().merge(ttfs)
    merged["head"].created, merged["head"].modified = created, modified
    merged.recalcTimestamp = False
    merged.save(out)
    cmap = merged.getBestCmap()
    print(f"{out}: {len(merged.getGlyphOrder())} glyphs, {len(cmap)} code points", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
