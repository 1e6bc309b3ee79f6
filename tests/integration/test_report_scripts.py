"""Every script a team writes, in the PDF summary publish-page attaches (issue 17): real glyphs
(the glyph ids in the content streams, not pdftotext, which reads the text back through the
ToUnicode map even where a box was drawn), right-to-left lines in Unicode bidi order, and every
font embedded and subset."""

import re
import subprocess
import uuid

import pytest
from pypdf import PdfReader
from pypdf.generic import ContentStream

from . import jobs

SPACE = "SPA"

# One item in each script; the Rust unit tests in shared/src/reports/text.rs have the same kind.
CORPUS = {
    "Latin": "Quarantine the flaky tests, then fix them (Chloé, naïve façade)",
    "Greek": "Ελληνικά: η ομάδα συμφώνησε",
    "Cyrillic": "Кириллица: команда договорилась",
    "Simplified Chinese": "简体中文：发布列车推迟了",
    "Traditional Chinese": "繁體中文：發佈列車延遲了",
    "Japanese": "日本語：リリースが遅れた。ひらがなとカタカナ",
    "Korean": "한국어: 릴리스가 늦어졌습니다",
    "Arabic": "العربية: تأخر الإصدار بسبب بيئة مشتركة",
    "Hebrew": "עברית: השחרור התעכב",
    "Devanagari": "हिन्दी: रिलीज़ में देरी हुई, क्षमा करें",
    "Thai": "ภาษาไทย: การเปิดตัวล่าช้า",
    "Emoji": "Emoji: 🎉 👍🏽 ❤️ 👩‍💻 🚀",
}
MIXED = "שלום (1 votes) עולם"

# The fonts (subset prefix and krilla's CID suffix removed) that must draw the corpus.
FONTS = {"DejaVuSans", "DejaVuSans-Bold", "NotoSansCJKjp-Regular", "NotoSansArabic-Regular", "NotoSansArabic-Bold",
         "NotoSansHebrew-Regular", "NotoSansDevanagari-Regular", "NotoSansThai-Regular", "NotoSansThai-Bold",
         "NotoEmoji-Regular"}


def report() -> dict:
    r = jobs.retrospective(items=list(CORPUS.values()) + [MIXED], title="Scripts " + uuid.uuid4().hex[:6])
    # Headings are bold: Arabic and Thai have bold faces, CJK and emoji fall back to regular.
    r["sections"][1]["title"] = "Bold: العربية ภาษาไทย 日本語 🎉"
    return r


@pytest.fixture
def pdf_path(bridge, tmp_path):
    b, tenant, _ = jobs.confluence_tenant(bridge, "cloud", SPACE)
    r = jobs.publish(b, tenant, report())
    assert r.status_code == 200, r.text
    [attachment] = jobs.attachments(b, r.json()["page_id"])
    path = tmp_path / "report.pdf"
    path.write_bytes(jobs.attachment_bytes(attachment))
    return path


def base_name(font) -> str:
    name = str(font["/BaseFont"]).lstrip("/")
    return re.sub(r"^[A-Z]{6}\+", "", name).removesuffix("-Identity-H")


def raw(operand) -> bytes:
    return operand.original_bytes if hasattr(operand, "original_bytes") else bytes(operand)


def drawn_glyphs(path) -> dict[str, list[int]]:
    """Font name -> every glyph id the content streams draw with it (Tj, TJ, ' and ")."""
    reader = PdfReader(path)
    glyphs: dict[str, list[int]] = {}
    for page in reader.pages:
        fonts = {name: font.get_object() for name, font in page["/Resources"]["/Font"].items()}
        current = None
        for operands, op in ContentStream(page.get_contents(), reader).operations:
            if op == b"Tf":
                current = fonts[operands[0]]
                # krilla writes Identity-H CID fonts: each string is 2-byte glyph ids of the subset.
                assert current["/Subtype"] == "/Type0" and current["/Encoding"] == "/Identity-H", current
                continue
            strings = []
            if op in (b"Tj", b"'"):
                strings = [operands[0]]
            elif op == b'"':
                strings = [operands[2]]
            elif op == b"TJ":
                strings = [o for o in operands[0] if not isinstance(o, (int, float))]
            for s in strings:
                data = raw(s)
                assert len(data) % 2 == 0, data
                ids = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
                glyphs.setdefault(base_name(current), []).extend(ids)
    return glyphs


def test_every_script_is_drawn_with_real_glyphs(pdf_path):
    glyphs = drawn_glyphs(pdf_path)
    for font, ids in glyphs.items():
        # The subset keeps .notdef as glyph 0: the box a character without a glyph prints as.
        assert 0 not in ids, f"{font} draws .notdef {ids.count(0)} times"
    missing = FONTS - set(glyphs)
    assert not missing, f"fonts that drew nothing: {sorted(missing)} (drawn: {sorted(glyphs)})"
    text = pdftotext(pdf_path)
    for script, item in CORPUS.items():
        if script not in ("Arabic", "Hebrew", "Devanagari", "Thai", "Emoji"):  # pdftotext's own reordering
            assert " ".join(item.split()) in " ".join(text.split()), script


def test_every_font_is_embedded_and_subset(pdf_path):
    out = subprocess.run(["pdffonts", str(pdf_path)], check=True, capture_output=True, text=True).stdout
    rows = out.splitlines()[2:]
    assert len(rows) >= len(FONTS), out
    for row in rows:
        # name type... encoding emb sub uni object-id generation
        emb, sub, uni = row.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), row
    names = {re.sub(r"^[A-Z]{6}\+", "", row.split()[0]).removesuffix("-Identity-H") for row in rows}
    assert FONTS <= names, out


def chunks_on_the_line_of(path, needle: str) -> list[tuple[float, str, str]]:
    """(x, font, text) of each text-showing operator on the line whose text holds `needle`, left to right."""
    page_chunks = []
    for page in PdfReader(path).pages:
        chunks = []
        page.extract_text(visitor_text=lambda text, cm, tm, font, size: chunks.append(
            (round(tm[5], 1), tm[4], base_name(font) if font else "", text)) if text.strip() else None)
        page_chunks += chunks
    [y] = {y for y, _, _, t in page_chunks if needle in t or needle[::-1] in t} or {None}
    assert y is not None, f"no line holds {needle!r}"
    return sorted((x, font, t) for cy, x, font, t in page_chunks if cy == y)


def test_a_right_to_left_line_keeps_each_runs_order(pdf_path):
    line = chunks_on_the_line_of(pdf_path, "עולם")
    texts = [t for _, _, t in line]

    def at(word, after=-1):
        """Index of the first chunk after `after` drawing `word`; a right-to-left run's glyphs are
        in visual order, so its text reads backwards."""
        return next(i for i, t in enumerate(texts) if i > after and (word in t or word[::-1] in t))

    # Left to right on the page (UAX #9): the last Hebrew word, "votes", "1", the first word — a
    # Hebrew reader, from the right, reads "שלום (1 votes) עולם". Never "(setov 1)": the
    # left-to-right run keeps its order. (The layout may add more to the line, e.g. the item's
    # own vote count; the corpus item's runs are in this order among them.)
    last_word = at("עולם")
    votes = at("votes", last_word)
    assert texts[votes].strip() == "votes" and texts[at("1", votes)].strip() == "1", texts
    at("שלום", at("1", votes))
    assert not any("setov" in t for t in texts), texts
    hebrew = [font for _, font, t in line if "שלום" in t or "שלום"[::-1] in t]
    assert hebrew == ["NotoSansHebrew-Regular"], line

    # pdftotext reads the runs left to right, each right-to-left one back in logical order: the
    # Hebrew words spelled forwards, "votes" as written (before: the whole line mirrored).
    [read] = [ln for ln in pdftotext(pdf_path).splitlines() if "votes" in ln and "שלום" in ln]
    assert "setov" not in read and "עולם" in read and "votes 1" in read, read


def pdftotext(path) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
