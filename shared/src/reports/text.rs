//! Text for the PDF: which font draws each character, how a line is shaped (rustybuzz), put in
//! visual order (the Unicode bidi algorithm, UAX #9), measured, wrapped and drawn. [`Typesetter`]
//! is the one entry point the PDF layout uses; it knows nothing of reports.
//!
//! Fonts, tried in this order for each character (README, "Fonts and scripts"):
//! - DejaVu Sans (regular, bold): Latin, Greek, Cyrillic, most symbols — the primary font;
//! - Noto Sans Arabic, Hebrew, Devanagari and Thai (regular, bold), Noto Emoji (monochrome
//!   outlines, regular only) — all compiled in;
//! - Noto Sans CJK (the JP face of the pan-CJK collection: Chinese, Japanese, Korean; regular
//!   only), too large to compile in: read from a file (a Lambda layer) by the [`FontBook`], at
//!   most once per instance, on the first character no compiled-in font has.
//!
//! A line is split into runs of one direction (bidi), each run into runs of one font: a letter
//! goes to the first font that has it; combining marks, joiners, variation selectors and emoji
//! modifiers stay with their base; spaces, digits and punctuation stay with the run they are in
//! when its font has them. Each run is shaped on its own with its direction, and the runs are laid
//! out left to right in visual order, so "שלום (1 votes) עולם" keeps "(1 votes)" readable.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;

use krilla::geom::Point;
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use unicode_bidi::ParagraphBidiInfo;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
use unicode_script::{Script, UnicodeScript};

use super::pdf::PdfError;

/// The configuration key that names the CJK font's file (shared/env.json).
pub const CJK_FONT_KEY: &str = "BRIDGE_CJK_FONT_PATH";

/// Where the Lambda layer puts the CJK font (infra/lib/constructs/functions.ts), the default.
pub const LAYER_CJK_FONT: &str = "/opt/fonts/NotoSansCJK-Regular.ttc";

/// Where `make fonts` puts it in a checkout (gitignored): what tests, the example binary and the
/// local stack read.
pub const LOCAL_CJK_FONT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fonts/NotoSansCJK-Regular.ttc");

/// The face of NotoSansCJK-Regular.ttc we draw with: 0 is "Noto Sans CJK JP" (then KR, SC, TC,
/// HK). Every face covers the same characters (Han unification); they differ only in a few
/// glyphs' regional forms, and Japanese is the one CJK language our labels speak.
pub const CJK_FACE_INDEX: u32 = 0;

/// A font file larger than this is not what we packaged (the collection is 19.5 MB).
const MAX_FONT_BYTES: u64 = 64 * 1024 * 1024;

/// The fonts a family is drawn with, by weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Sans,
    Arabic,
    Hebrew,
    Devanagari,
    Thai,
    Emoji,
    Cjk,
}

const FAMILIES: usize = 7;

/// The compiled-in families, in the order they are tried.
const EMBEDDED: [Family; 6] =
    [Family::Sans, Family::Arabic, Family::Hebrew, Family::Devanagari, Family::Thai, Family::Emoji];

static FILES: [(&[u8], Option<&[u8]>); 6] = [
    (
        include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        Some(include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf")),
    ),
    (
        include_bytes!("../../assets/fonts/NotoSansArabic-Regular.ttf"),
        Some(include_bytes!("../../assets/fonts/NotoSansArabic-Bold.ttf")),
    ),
    (
        include_bytes!("../../assets/fonts/NotoSansHebrew-Regular.ttf"),
        Some(include_bytes!("../../assets/fonts/NotoSansHebrew-Bold.ttf")),
    ),
    (
        include_bytes!("../../assets/fonts/NotoSansDevanagari-Regular.ttf"),
        Some(include_bytes!("../../assets/fonts/NotoSansDevanagari-Bold.ttf")),
    ),
    (
        include_bytes!("../../assets/fonts/NotoSansThai-Regular.ttf"),
        Some(include_bytes!("../../assets/fonts/NotoSansThai-Bold.ttf")),
    ),
    (include_bytes!("../../assets/fonts/NotoEmoji-Regular.ttf"), None),
];

/// One face as the shaper sees it and as krilla embeds it.
pub struct Loaded {
    shaper: rustybuzz::Face<'static>,
    font: Font,
}

impl Loaded {
    fn parse(data: &'static [u8], index: u32) -> Option<Self> {
        Some(Self { shaper: rustybuzz::Face::from_slice(data, index)?, font: Font::new(data.into(), index)? })
    }

    fn covers(&self, c: char) -> bool {
        self.shaper.glyph_index(c).is_some()
    }
}

/// A family's regular face and its bold one, if it has one (headings fall back to regular).
struct Weights {
    regular: Loaded,
    bold: Option<Loaded>,
}

/// The compiled-in faces, parsed once per instance (krilla's `draw_text` would parse a font's
/// tables again for every line, which was most of a 1,000-item report's render time).
static COMPILED: LazyLock<Option<Vec<Weights>>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(regular, bold)| {
            Some(Weights {
                regular: Loaded::parse(regular, 0)?,
                bold: match bold {
                    Some(bold) => Some(Loaded::parse(bold, 0)?),
                    None => None,
                },
            })
        })
        .collect()
});

/// The fonts one instance draws with: the compiled-in ones, and the CJK collection, read from
/// its file the first time a report needs a character only it has. Build one per instance (the
/// function's state) and share it; clones share the loaded font.
#[derive(Clone)]
pub struct FontBook(Arc<Book>);

struct Book {
    cjk_path: PathBuf,
    /// Read at most once: the font, or `None` when the file was missing or unreadable (then the
    /// characters only it has print as boxes, and one warning names the configuration key).
    cjk: OnceLock<Option<&'static Loaded>>,
}

impl std::fmt::Debug for FontBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontBook").field("cjk_path", &self.0.cjk_path).field("cjk_loaded", &self.cjk_loaded()).finish()
    }
}

impl FontBook {
    /// A book whose CJK font is the collection at `cjk_path` (read on first use).
    pub fn new(cjk_path: impl Into<PathBuf>) -> Self {
        Self(Arc::new(Book { cjk_path: cjk_path.into(), cjk: OnceLock::new() }))
    }

    /// The book of a checkout: the CJK font where `make fonts` puts it. For tests and the
    /// benchmark (`Rendering::plain`); functions build theirs from the configuration.
    pub fn local() -> &'static FontBook {
        static LOCAL: LazyLock<FontBook> = LazyLock::new(|| FontBook::new(LOCAL_CJK_FONT));
        &LOCAL
    }

    pub fn cjk_path(&self) -> &Path {
        &self.0.cjk_path
    }

    /// Whether the CJK font has been read (and was readable).
    pub fn cjk_loaded(&self) -> bool {
        self.0.cjk.get().is_some_and(Option::is_some)
    }

    /// Reads the CJK font now if it has not been (the benchmark times it); whether it is there.
    pub fn load_cjk(&self) -> bool {
        self.cjk().is_some()
    }

    /// The CJK face, read from its file on the first call. The file's bytes stay for the life of
    /// the book, which is the instance's: they are leaked once so that the shaper's view of them
    /// can be shared by every render without a copy.
    fn cjk(&self) -> Option<&'static Loaded> {
        *self.0.cjk.get_or_init(|| {
            let started = Instant::now();
            let path = &self.0.cjk_path;
            let loaded = read_font(path).and_then(|data| {
                let data: &'static [u8] = Box::leak(data.into_boxed_slice());
                Loaded::parse(data, CJK_FACE_INDEX).ok_or_else(|| "not an OpenType font collection".to_owned())
            });
            match loaded {
                Ok(loaded) => {
                    tracing::info!(path = %path.display(), ms = started.elapsed().as_millis() as u64, "CJK font loaded");
                    Some(&*Box::leak(Box::new(loaded)))
                }
                Err(reason) => {
                    tracing::warn!(
                        path = %path.display(),
                        reason = %reason,
                        "the CJK font is unavailable, so Chinese, Japanese and Korean text prints as boxes; \
                         point {CJK_FONT_KEY} at NotoSansCJK-Regular.ttc (the fonts layer)"
                    );
                    None
                }
            }
        })
    }
}

fn read_font(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_FONT_BYTES {
        return Err(format!("{size} bytes, more than the {MAX_FONT_BYTES} a font may have"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Size and weight of a piece of text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextStyle {
    pub size: f32,
    pub bold: bool,
}

impl TextStyle {
    pub const fn regular(size: f32) -> Self {
        Self { size, bold: false }
    }

    pub const fn bold(size: f32) -> Self {
        Self { size, bold: true }
    }
}

/// Glyphs of one font, in visual order, `x` points from the line's start.
#[derive(Clone)]
pub struct Run {
    pub font: Font,
    pub glyphs: Vec<KrillaGlyph>,
    /// The text the glyphs' ranges index into.
    pub text: String,
    pub x: f32,
}

/// A shaped line: its runs left to right and its width in points.
pub struct Line {
    pub runs: Vec<Run>,
    pub width: f32,
    pub size: f32,
}

/// One run shaped by rustybuzz in the given direction (script guessed from the text), each glyph
/// keeping the range of text it stands for (the PDF's text layer).
fn shape_run(face: &rustybuzz::Face<'_>, font: &Font, text: &str, rtl: bool) -> Vec<KrillaGlyph> {
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(text);
    buffer.set_direction(if rtl { rustybuzz::Direction::RightToLeft } else { rustybuzz::Direction::LeftToRight });
    buffer.guess_segment_properties();
    let output = rustybuzz::shape(face, &[], buffer);
    let (infos, positions) = (output.glyph_infos(), output.glyph_positions());
    let upem = font.units_per_em();
    (0..infos.len())
        .map(|i| {
            let start = infos[i].cluster;
            // A cluster ends where the next one in text order begins: after it in visual order
            // for left-to-right text, before it for right-to-left.
            let next = if rtl {
                infos[..i].iter().rev().find(|info| info.cluster != start)
            } else {
                infos[i..].iter().find(|info| info.cluster != start)
            };
            let end = next.map_or(text.len(), |info| info.cluster as usize);
            let p = positions[i];
            KrillaGlyph::new(
                GlyphId::new(infos[i].glyph_id),
                p.x_advance as f32 / upem,
                p.x_offset as f32 / upem,
                p.y_offset as f32 / upem,
                p.y_advance as f32 / upem,
                start as usize..end,
                None,
            )
        })
        .collect()
}

/// Text whose glyphs depend only on each word (left to right, no joining or reordering across
/// spaces): Latin, Greek, Cyrillic and Armenian with their marks, and the punctuation, arrows and
/// symbols between U+2000 and U+2BFF. Anything else is shaped a whole run at a time.
fn word_by_word(text: &str) -> bool {
    text.chars().all(|c| c < '\u{0590}' || ('\u{2000}'..='\u{2BFF}').contains(&c))
}

/// One face of one render: the font and the words and runs it shaped (a report's words repeat:
/// a 1,000-item report shaped line by line spent two thirds of its render time in rustybuzz).
struct Face {
    loaded: &'static Loaded,
    words: HashMap<String, Vec<KrillaGlyph>>,
    /// By direction (left to right, right to left).
    runs: [HashMap<String, Vec<KrillaGlyph>>; 2],
}

impl Face {
    fn new(loaded: &'static Loaded) -> Self {
        Self { loaded, words: HashMap::new(), runs: Default::default() }
    }

    /// `text` shaped word by word from the cache, or `None` if this face lacks one of its
    /// characters (then the line needs fallback).
    fn words_if_covered(&mut self, text: &str) -> Option<Vec<KrillaGlyph>> {
        let mut glyphs = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive(' ') {
            let shaped = match self.words.get(piece) {
                Some(shaped) => shaped,
                None => {
                    if !piece.chars().all(|c| self.loaded.covers(c)) {
                        return None;
                    }
                    let shaped = shape_run(&self.loaded.shaper, &self.loaded.font, piece, false);
                    self.words.entry(piece.to_owned()).or_insert(shaped)
                }
            };
            glyphs.extend(shaped.iter().map(|g| {
                let mut g = g.clone();
                g.text_range = g.text_range.start + offset..g.text_range.end + offset;
                g
            }));
            offset += piece.len();
        }
        Some(glyphs)
    }

    /// One run of this face's characters, in one direction.
    fn shape(&mut self, text: &str, rtl: bool) -> Vec<KrillaGlyph> {
        if !rtl && word_by_word(text) {
            if let Some(glyphs) = self.words_if_covered(text) {
                return glyphs;
            }
        }
        let cache = &mut self.runs[usize::from(rtl)];
        if let Some(glyphs) = cache.get(text) {
            return glyphs.clone();
        }
        let glyphs = shape_run(&self.loaded.shaper, &self.loaded.font, text, rtl);
        cache.insert(text.to_owned(), glyphs.clone());
        glyphs
    }
}

/// How a character chooses its font.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// Marks, joiners, variation selectors, emoji modifiers and tags: with their base.
    Attached,
    /// Spaces, digits, punctuation, symbols: with the run they are in, if its font has them.
    Neutral,
    /// Everything with a script of its own: the first font that has it.
    Letter,
}

const ZWJ: char = '\u{200D}';
const EMOJI_PRESENTATION: char = '\u{FE0F}';

fn kind(c: char) -> Kind {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() { Kind::Letter } else { Kind::Neutral };
    }
    if c.general_category_group() == GeneralCategoryGroup::Mark
        || matches!(c, '\u{200C}' | ZWJ | '\u{FE00}'..='\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{E0020}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
    {
        return Kind::Attached;
    }
    match c.script() {
        Script::Common | Script::Inherited | Script::Unknown => Kind::Neutral,
        _ => Kind::Letter,
    }
}

/// Characters the shaper hides when a font lacks them (joiners, selectors, tags, bidi controls),
/// so they never need a font of their own.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Shapes, measures, wraps and draws text for one render (its caches live as long as it does).
pub struct Typesetter {
    book: FontBook,
    /// By family, then weight (regular, bold); the CJK family's once its font is read.
    faces: [[Option<Face>; 2]; FAMILIES],
    /// By weight: the font each character went to when it chose on its own.
    picked: [HashMap<char, Family>; 2],
    /// By weight: the width of what `width` measured, in em (a report's words repeat).
    widths: [HashMap<String, f32>; 2],
    /// By weight: the lines that needed fallback or bidi, shaped at 1 pt.
    lines: [HashMap<String, Vec<Run>>; 2],
}

impl Typesetter {
    pub fn new(fonts: &FontBook) -> Result<Self, PdfError> {
        let compiled = COMPILED.as_ref().ok_or_else(|| PdfError::new("an embedded font is unreadable"))?;
        let mut faces: [[Option<Face>; 2]; FAMILIES] = Default::default();
        for (family, weights) in EMBEDDED.iter().zip(compiled) {
            faces[*family as usize] =
                [Some(Face::new(&weights.regular)), Some(Face::new(weights.bold.as_ref().unwrap_or(&weights.regular)))];
        }
        Ok(Self {
            book: fonts.clone(),
            faces,
            picked: Default::default(),
            widths: Default::default(),
            lines: Default::default(),
        })
    }

    /// The face of `family` in the weight asked for (or its regular one); the CJK font is read
    /// here on first use. `None`: the CJK font is unavailable.
    fn face(&mut self, family: Family, bold: bool) -> Option<&mut Face> {
        let slot = &mut self.faces[family as usize];
        if slot[0].is_none() {
            let loaded = self.book.cjk()?;
            *slot = [Some(Face::new(loaded)), Some(Face::new(loaded))];
        }
        slot[usize::from(bold)].as_mut()
    }

    fn covers(&mut self, family: Family, bold: bool, c: char) -> bool {
        self.face(family, bold).is_some_and(|face| face.loaded.covers(c))
    }

    /// The first font that has `c`; the emoji font first when `c` asks for emoji presentation.
    /// DejaVu when none has it (it prints its box).
    fn pick(&mut self, c: char, bold: bool, next: Option<char>) -> Family {
        if next == Some(EMOJI_PRESENTATION) && self.covers(Family::Emoji, bold, c) {
            return Family::Emoji;
        }
        if let Some(&family) = self.picked[usize::from(bold)].get(&c) {
            return family;
        }
        let family = self.first_covering(c, bold);
        self.picked[usize::from(bold)].insert(c, family);
        family
    }

    fn first_covering(&mut self, c: char, bold: bool) -> Family {
        // DejaVu has Arabic and Hebrew letters too, but not the forms and marks Noto's have.
        let own = match c.script() {
            Script::Arabic => Some(Family::Arabic),
            Script::Hebrew => Some(Family::Hebrew),
            Script::Devanagari => Some(Family::Devanagari),
            Script::Thai => Some(Family::Thai),
            _ => None,
        };
        if let Some(family) = own.filter(|&family| self.covers(family, bold, c)) {
            return family;
        }
        EMBEDDED.into_iter().chain([Family::Cjk]).find(|&family| self.covers(family, bold, c)).unwrap_or(Family::Sans)
    }

    /// `text` (one direction) cut into runs of one font, in text order.
    fn font_runs(&mut self, text: &str, bold: bool) -> Vec<(Family, std::ops::Range<usize>)> {
        let mut runs: Vec<(Family, std::ops::Range<usize>)> = Vec::new();
        let mut chars = text.char_indices().peekable();
        let mut after_zwj = false;
        while let Some((at, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let current = runs.last().map(|(family, _)| *family);
            let stay = match kind(c) {
                _ if after_zwj => current.filter(|&f| self.covers(f, bold, c)),
                _ if invisible(c) => Some(current.unwrap_or(Family::Sans)),
                Kind::Attached => current.filter(|&f| invisible(c) || self.covers(f, bold, c)),
                Kind::Neutral if next == Some(EMOJI_PRESENTATION) => None,
                // The emoji font has digits and `#` for keycaps: text after an emoji goes back.
                Kind::Neutral if current == Some(Family::Emoji) && c.is_ascii() && c != ' ' => None,
                Kind::Neutral => current.filter(|&f| self.covers(f, bold, c)),
                Kind::Letter => None,
            };
            let family = match stay {
                Some(family) => family,
                None => self.pick(c, bold, next),
            };
            after_zwj = c == ZWJ;
            let end = at + c.len_utf8();
            match runs.last_mut() {
                Some((f, range)) if *f == family => range.end = end,
                _ => runs.push((family, at..end)),
            }
        }
        runs
    }

    /// The line shaped, ready to draw.
    pub fn line(&mut self, text: &str, style: TextStyle) -> Line {
        // Most lines are DejaVu's alone, left to right: their words come from the cache.
        if word_by_word(text) {
            if let Some(glyphs) = self.face(Family::Sans, style.bold).and_then(|face| face.words_if_covered(text)) {
                let width = glyphs.iter().map(|g| g.x_advance).sum::<f32>() * style.size;
                let font = self.face(Family::Sans, style.bold).map(|face| face.loaded.font.clone());
                if let Some(font) = font {
                    return Line {
                        runs: vec![Run { font, glyphs, text: text.to_owned(), x: 0.0 }],
                        width,
                        size: style.size,
                    };
                }
            }
        }
        self.mixed_line(text, style)
    }

    /// A line that needs fallback or bidi, from the cache when it was measured before (a wrapped
    /// line is measured once and drawn once).
    fn mixed_line(&mut self, text: &str, style: TextStyle) -> Line {
        let weight = usize::from(style.bold);
        let runs = match self.lines[weight].get(text) {
            Some(runs) => runs.clone(),
            None => {
                let runs = self.mixed_runs(text, style.bold);
                self.lines[weight].insert(text.to_owned(), runs.clone());
                runs
            }
        };
        // Cached at 1 pt: `x` in em.
        let width = runs.last().map_or(0.0, |r| r.x + r.glyphs.iter().map(|g| g.x_advance).sum::<f32>());
        let runs = runs.into_iter().map(|r| Run { x: r.x * style.size, ..r }).collect();
        Line { runs, width: width * style.size, size: style.size }
    }

    /// The runs of a line at 1 pt (`x` in em), left to right.
    fn mixed_runs(&mut self, text: &str, bold: bool) -> Vec<Run> {
        let bidi = ParagraphBidiInfo::new(text, None);
        let directed: Vec<(bool, std::ops::Range<usize>)> = if bidi.is_pure_ltr {
            vec![(false, 0..text.len())]
        } else {
            let (levels, runs) = bidi.visual_runs(0..text.len());
            runs.into_iter().filter(|r| !r.is_empty()).map(|r| (levels[r.start].is_rtl(), r)).collect()
        };
        let mut runs = Vec::new();
        let mut x = 0.0;
        for (rtl, range) in directed {
            let piece = &text[range];
            let mut fonts = self.font_runs(piece, bold);
            if rtl {
                // Right to left: the run's last font run is leftmost.
                fonts.reverse();
            }
            for (family, range) in fonts {
                let run_text = &piece[range];
                let family = if self.face(family, bold).is_some() { family } else { Family::Sans };
                let Some(face) = self.face(family, bold) else { continue };
                let glyphs = face.shape(run_text, rtl);
                let font = face.loaded.font.clone();
                let width = glyphs.iter().map(|g| g.x_advance).sum::<f32>();
                runs.push(Run { font, glyphs, text: run_text.to_owned(), x });
                x += width;
            }
        }
        runs
    }

    /// Width in points of `text` on one line.
    pub fn width(&mut self, text: &str, style: TextStyle) -> f32 {
        if style.size == 0.0 {
            return 0.0;
        }
        let weight = usize::from(style.bold);
        if let Some(em) = self.widths[weight].get(text) {
            return em * style.size;
        }
        let width = self.line(text, style).width;
        self.widths[weight].insert(text.to_owned(), width / style.size);
        width
    }

    /// `text` broken into lines no wider than `max` points: at spaces, and between characters
    /// (never inside a cluster: a base with its marks) inside a word wider than the line.
    /// Paragraphs (`\n`) start new lines. Each line is measured as it will be drawn.
    pub fn wrap(&mut self, text: &str, style: TextStyle, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let space = self.width(" ", style);
        for paragraph in text.lines() {
            let mut words: VecDeque<&str> = paragraph.split_whitespace().collect();
            let mut line: Vec<&str> = Vec::new();
            let mut line_width = 0.0;
            while let Some(word) = words.pop_front() {
                let word_width = self.width(word, style);
                let with_word = if line.is_empty() { word_width } else { line_width + space + word_width };
                if with_word <= max {
                    line.push(word);
                    line_width = with_word;
                    continue;
                }
                if !line.is_empty() {
                    // A word wider than a whole line (in CJK text a sentence is one "word": no
                    // spaces) starts in what is left of this one.
                    let (cut, _) =
                        if word_width > max { self.fitting(word, style, max - line_width - space) } else { (0, 0.0) };
                    if cut > 0 {
                        line.push(&word[..cut]);
                    }
                    words.push_front(&word[cut..]);
                    self.finish(&mut lines, &mut line, &mut words, style, max);
                    line_width = 0.0;
                    continue;
                }
                // Alone and still too wide: as many clusters as fit on each line.
                let mut rest = word;
                loop {
                    let (cut, width) = self.fitting(rest, style, max);
                    if cut == rest.len() {
                        line.push(rest);
                        line_width = width;
                        break;
                    }
                    // At least one cluster per line, however narrow the line.
                    let cut = if cut == 0 { clusters(rest).first().map_or(rest.len(), |c| c.end) } else { cut };
                    lines.push(rest[..cut].to_owned());
                    rest = &rest[cut..];
                    if rest.is_empty() {
                        break;
                    }
                }
            }
            self.finish(&mut lines, &mut line, &mut words, style, max);
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        lines
    }

    /// How much of `word` fits in `room` points, cut between clusters: the byte length and its
    /// width (the clusters' widths added up).
    fn fitting(&mut self, word: &str, style: TextStyle, room: f32) -> (usize, f32) {
        let mut width = 0.0;
        let mut cut = 0;
        for cluster in clusters(word) {
            let w = self.width(&word[cluster.clone()], style);
            if width + w > room {
                break;
            }
            width += w;
            cut = cluster.end;
        }
        (cut, width)
    }

    /// Ends a line: if shaped as a whole it is wider than its words measured one by one (another
    /// font's space, kerning), its last words go back to start the next line.
    fn finish<'t>(
        &mut self,
        lines: &mut Vec<String>,
        line: &mut Vec<&'t str>,
        words: &mut VecDeque<&'t str>,
        style: TextStyle,
        max: f32,
    ) {
        let mut joined = line.join(" ");
        while line.len() > 1 && self.width(&joined, style) > max {
            if let Some(last) = line.pop() {
                words.push_front(last);
            }
            joined = line.join(" ");
        }
        lines.push(joined);
        line.clear();
    }

    /// Draws a shaped line with its baseline's left end at `at`.
    pub fn draw(surface: &mut Surface<'_>, at: Point, line: &Line) {
        for run in &line.runs {
            surface.draw_glyphs(
                Point::from_xy(at.x + run.x, at.y),
                &run.glyphs,
                run.font.clone(),
                &run.text,
                line.size,
                false,
            );
        }
    }

    /// Shapes and draws `text` on one line; returns its width.
    pub fn draw_text(&mut self, surface: &mut Surface<'_>, at: Point, text: &str, style: TextStyle) -> f32 {
        let line = self.line(text, style);
        Self::draw(surface, at, &line);
        line.width
    }
}

/// Punctuation that must not start a line ("。", "、", "）", "!"): it stays with the character
/// before it when a word is cut.
fn closing(c: char) -> bool {
    use unicode_properties::GeneralCategory::{ClosePunctuation, FinalPunctuation, OtherPunctuation};
    matches!(c.general_category(), ClosePunctuation | FinalPunctuation | OtherPunctuation)
        || matches!(
            c,
            'ー' | 'ぁ'
                | 'ぃ'
                | 'ぅ'
                | 'ぇ'
                | 'ぉ'
                | 'っ'
                | 'ゃ'
                | 'ゅ'
                | 'ょ'
                | 'ァ'
                | 'ィ'
                | 'ゥ'
                | 'ェ'
                | 'ォ'
                | 'ッ'
                | 'ャ'
                | 'ュ'
                | 'ョ'
        )
}

/// `word` cut before each character that does not attach to the one before it (a base with its
/// marks, an emoji sequence, closing punctuation with what it closes): the pieces' byte ranges.
fn clusters(word: &str) -> Vec<std::ops::Range<usize>> {
    let mut clusters: Vec<std::ops::Range<usize>> = Vec::new();
    let mut after_zwj = false;
    for (at, c) in word.char_indices() {
        let end = at + c.len_utf8();
        match clusters.last_mut() {
            Some(last) if after_zwj || kind(c) == Kind::Attached || closing(c) => last.end = end,
            _ => clusters.push(at..end),
        }
        after_zwj = c == ZWJ;
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line in each script a team writes (issue 17), with its family.
    pub(crate) const CORPUS: [(&str, &str); 14] = [
        ("Latin", "Quarantine the flaky tests — then fix them (3 votes, Chloé, naïve façade)"),
        ("Greek", "Ελληνικά: η ομάδα συμφώνησε"),
        ("Cyrillic", "Кириллица: команда договорилась"),
        ("Simplified Chinese", "简体中文：发布列车推迟了"),
        ("Traditional Chinese", "繁體中文：發佈列車延遲了"),
        ("Japanese", "日本語：リリースが遅れた。ひらがなとカタカナ"),
        ("Korean", "한국어: 릴리스가 늦어졌습니다"),
        ("Arabic", "العربية: تأخر الإصدار بسبب بيئة مشتركة"),
        ("Hebrew", "עברית: השחרור התעכב"),
        ("Devanagari", "हिन्दी: रिलीज़ में देरी हुई, क्षमा करें"),
        ("Thai", "ภาษาไทย: การเปิดตัวล่าช้า"),
        ("Emoji", "Emoji: 🎉 👍🏽 ❤️ 👩‍💻 🚀 1️⃣"),
        ("Mixed", "שלום (1 votes) עולם"),
        ("Mixed CJK and Latin", "日本 team ships 2026年 → مرحبا 3"),
    ];

    fn typesetter() -> Typesetter {
        assert!(
            Path::new(LOCAL_CJK_FONT).exists(),
            "{LOCAL_CJK_FONT} is missing: `make fonts` fetches the CJK font the tests draw with"
        );
        Typesetter::new(FontBook::local()).unwrap()
    }

    fn glyph_ids(line: &Line) -> Vec<u32> {
        line.runs.iter().flat_map(|r| r.glyphs.iter().map(|g| g.glyph_id.to_u32())).collect()
    }

    #[test]
    fn every_script_draws_real_glyphs_in_both_weights() {
        let mut typesetter = typesetter();
        for (script, text) in CORPUS {
            for style in [TextStyle::regular(10.5), TextStyle::bold(14.0)] {
                let line = typesetter.line(text, style);
                let ids = glyph_ids(&line);
                assert!(
                    !ids.is_empty() && ids.iter().all(|&id| id != 0),
                    "{script} ({style:?}) draws .notdef: {ids:?}"
                );
                assert!(line.width > 0.0);
            }
        }
    }

    #[test]
    fn each_run_is_drawn_in_the_font_of_its_script() {
        let mut typesetter = typesetter();
        let line = typesetter.line("Team 日本 مرحبا שלום हिन्दी ไทย 🎉", TextStyle::regular(10.0));
        let families: Vec<&str> = line.runs.iter().map(|r| r.text.trim()).filter(|t| !t.is_empty()).collect();
        // Visual order: the Arabic and Hebrew words form one right-to-left run.
        assert_eq!(families, ["Team", "日本", "שלום", "مرحبا", "हिन्दी", "ไทย", "🎉"], "{families:?}");
        // Combining marks, ZWJ sequences and variation selectors stay with their base's font.
        let runs = typesetter.font_runs("é́ 👩‍💻 ❤️ क्षि", false);
        let texts: Vec<(Family, &str)> = runs.iter().map(|(f, r)| (*f, &"é́ 👩‍💻 ❤️ क्षि"[r.clone()])).collect();
        assert_eq!(texts, [(Family::Sans, "é́ "), (Family::Emoji, "👩‍💻 ❤️ "), (Family::Devanagari, "क्षि")], "{texts:?}");
        // The emoji font has keycap digits: the text after an emoji goes back to DejaVu.
        let runs = typesetter.font_runs("🎉 3 votes", false);
        assert_eq!(runs.iter().map(|(f, _)| *f).collect::<Vec<_>>(), [Family::Emoji, Family::Sans]);
    }

    #[test]
    fn right_to_left_lines_keep_each_runs_order() {
        let mut typesetter = typesetter();
        let line = typesetter.line("שלום (1 votes) עולם", TextStyle::regular(10.0));
        let runs: Vec<&str> = line.runs.iter().map(|r| r.text.as_str()).collect();
        // Left to right on the page: the last Hebrew word first, then the others; each
        // left-to-right run in its own order, never "(setov 1)". (The space between "1" and
        // "votes" is right-to-left by rule N1 — numbers count as right-to-left for the neutrals
        // next to them — so a Hebrew reader, reading from the right, meets "1" before "votes".)
        let at = |needle: &str| runs.iter().position(|r| r.contains(needle)).unwrap();
        assert!(at("עולם") < at("votes") && at("votes") < at("1") && at("1") < at("שלום"), "{runs:?}");
        assert!(runs.contains(&"votes") && !runs.iter().any(|r| r.contains("setov")), "{runs:?}");
        let line2 = typesetter.line("שלום Sprint review עולם", TextStyle::regular(10.0));
        let runs2: Vec<&str> = line2.runs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(runs2, ["עולם", " ", "Sprint review", "שלום "], "{runs2:?}");
        // The runs' x positions increase left to right and add up to the width.
        let xs: Vec<f32> = line.runs.iter().map(|r| r.x).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{xs:?}");
        // Within a right-to-left run the glyphs are reversed (the first letter is drawn last),
        // and the parentheses are mirrored: the one before "1" in the text is drawn as ")".
        let hebrew = line.runs.iter().find(|r| r.text.contains("שלום")).unwrap();
        let first = hebrew.glyphs.last().unwrap();
        assert_eq!(&hebrew.text[first.text_range.clone()], "ש");
        // A left-to-right line is one run per font, in text order.
        let line = typesetter.line("votes: 1 שלום", TextStyle::regular(10.0));
        assert_eq!(line.runs.first().map(|r| r.text.as_str()), Some("votes: 1 "));
    }

    #[test]
    fn shaping_word_by_word_draws_the_glyphs_of_the_whole_line() {
        let mut typesetter = typesetter();
        for line in
            ["Quarantine the flaky tests — then fix them (3 votes, Chloé)", "a  b ", "", "Ελληνικά και кириллица"]
        {
            let face = typesetter.face(Family::Sans, false).unwrap();
            let whole: Vec<_> = shape_run(&face.loaded.shaper, &face.loaded.font, line, false)
                .iter()
                .map(|g| (g.glyph_id, g.text_range.clone()))
                .collect();
            let by_word: Vec<_> = face.shape(line, false).iter().map(|g| (g.glyph_id, g.text_range.clone())).collect();
            assert_eq!(by_word, whole, "{line:?}");
        }
        // Other scripts are shaped a whole run at a time (joining, reordering).
        assert!(!word_by_word("مرحبا بالعالم") && !word_by_word("日本語") && word_by_word("naïve → café"));
    }

    #[test]
    fn wrapping_keeps_every_line_inside_the_width() {
        let mut typesetter = typesetter();
        let style = TextStyle::regular(10.5);
        let cjk = "発布列車推遅了因為集成環境被三個團隊共用".repeat(6);
        let mixed = CORPUS.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" ");
        for text in [format!("{} {}", "word ".repeat(60), "x".repeat(400)), cjk, mixed.repeat(3)] {
            let lines = typesetter.wrap(&text, style, 200.0);
            assert!(lines.len() > 2);
            for line in &lines {
                assert!(typesetter.width(line, style) <= 200.0 + 0.01, "{line:?}");
            }
            assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        }
        // CJK text (no spaces) starts on the line it follows, and no line starts with "。".
        let item = format!("• {}", "統合環境を三つのチームで共有していて、誰も日程を管理していなかった。".repeat(3));
        let lines = typesetter.wrap(&item, style, 200.0);
        assert!(lines[0].chars().count() > 5, "{lines:?}");
        assert!(lines.iter().all(|l| !l.starts_with(['。', '、'])), "{lines:?}");
        // A long Devanagari word is never cut between a consonant and its marks.
        let word = "क्षमाकरें".repeat(12);
        for line in typesetter.wrap(&word, style, 60.0) {
            let first = line.chars().next().unwrap();
            assert_eq!(kind(first), Kind::Letter, "{line:?}");
        }
    }

    #[test]
    fn the_cjk_font_is_read_once_on_the_first_cjk_text_and_a_missing_one_prints_boxes() {
        let book = FontBook::new(LOCAL_CJK_FONT);
        let mut typesetter = Typesetter::new(&book).unwrap();
        typesetter.line("Latin, Ελληνικά, العربية, हिन्दी, ไทย, 🎉", TextStyle::regular(10.0));
        typesetter.line("\u{200F}שלום\u{200E} \u{2067}votes\u{2069}\u{FEFF}", TextStyle::regular(10.0));
        assert!(!book.cjk_loaded(), "no CJK text, no CJK font read");
        let line = typesetter.line("日本語", TextStyle::regular(10.0));
        assert!(book.cjk_loaded() && glyph_ids(&line).iter().all(|&id| id != 0));
        // Another render of the same instance shares the font already read.
        let again = Typesetter::new(&book.clone()).unwrap().line("한국어", TextStyle::bold(10.0));
        assert!(glyph_ids(&again).iter().all(|&id| id != 0));

        let missing = FontBook::new("/nonexistent/NotoSansCJK-Regular.ttc");
        let mut typesetter = Typesetter::new(&missing).unwrap();
        let line = typesetter.line("日本 team", TextStyle::regular(10.0));
        assert!(!missing.cjk_loaded());
        let ids = glyph_ids(&line);
        assert_eq!(
            ids.iter().filter(|&&id| id == 0).count(),
            2,
            "without the font CJK prints boxes, the rest renders: {ids:?}"
        );
    }
}
