//! Text for the PDF: which font draws each character, how a line is shaped (rustybuzz), measured,
//! wrapped and drawn. [`Typesetter`] is the one entry point the PDF layout uses; it knows nothing
//! of reports.
//!
//! Today it has one family (DejaVu Sans, regular and bold: Latin, Greek, Cyrillic). Fallback per
//! run, bidi and the other scripts' fonts come in behind the same interface.

use std::collections::HashMap;
use std::sync::LazyLock;

use krilla::geom::Point;
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};

use super::pdf::PdfError;

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Parsed once per instance; the font data is static.
static FONTS: LazyLock<Option<(Font, Font)>> =
    LazyLock::new(|| Some((Font::new(REGULAR.into(), 0)?, Font::new(BOLD.into(), 0)?)));

/// The same fonts as the shaper sees them, parsed once per instance too: krilla's `draw_text`
/// parses the font's tables again for every line it draws, which was most of the time a
/// 1,000-item report took to render (`make bench`).
static FACES: LazyLock<Option<(rustybuzz::Face<'static>, rustybuzz::Face<'static>)>> =
    LazyLock::new(|| Some((rustybuzz::Face::from_slice(REGULAR, 0)?, rustybuzz::Face::from_slice(BOLD, 0)?)));

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

/// One line shaped as krilla's `draw_text` shapes it (rustybuzz, direction and script guessed
/// from the text), each glyph keeping the range of text it stands for (the PDF's text layer).
fn shape_run(face: &rustybuzz::Face<'_>, font: &Font, text: &str) -> Vec<KrillaGlyph> {
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(text);
    buffer.guess_segment_properties();
    let forward = matches!(buffer.direction(), rustybuzz::Direction::LeftToRight | rustybuzz::Direction::TopToBottom);
    let output = rustybuzz::shape(face, &[], buffer);
    let (infos, positions) = (output.glyph_infos(), output.glyph_positions());
    let upem = font.units_per_em();
    (0..infos.len())
        .map(|i| {
            let start = infos[i].cluster;
            // A cluster ends where the next one in text order begins: after it in visual order
            // for left-to-right text, before it for right-to-left.
            let next = if forward {
                infos[i..].iter().find(|info| info.cluster != start)
            } else {
                infos[..i].iter().rev().find(|info| info.cluster != start)
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
/// symbols between U+2000 and U+2BFF. Anything else is shaped a whole line at a time.
fn word_by_word(text: &str) -> bool {
    text.chars().all(|c| c < '\u{0590}' || ('\u{2000}'..='\u{2BFF}').contains(&c))
}

/// One face: the shaper's view and krilla's, and the words it shaped (a report's words repeat:
/// a 1,000-item report shaped line by line spent two thirds of its render time in rustybuzz).
struct Face {
    shaper: &'static rustybuzz::Face<'static>,
    font: Font,
    words: HashMap<String, Vec<KrillaGlyph>>,
}

impl Face {
    fn shape(&mut self, text: &str) -> Vec<KrillaGlyph> {
        if !word_by_word(text) {
            return shape_run(self.shaper, &self.font, text);
        }
        let mut glyphs = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive(' ') {
            let shaped = match self.words.get(piece) {
                Some(shaped) => shaped,
                None => {
                    let shaped = shape_run(self.shaper, &self.font, piece);
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
        glyphs
    }
}

/// Shapes, measures, wraps and draws text for one render (its caches live as long as it does).
pub struct Typesetter {
    regular: Face,
    bold: Face,
}

impl Typesetter {
    pub fn new() -> Result<Self, PdfError> {
        let unreadable = || PdfError::new("the embedded font is unreadable");
        let (regular, bold) = FONTS.clone().ok_or_else(unreadable)?;
        let (regular_face, bold_face) = FACES.as_ref().ok_or_else(unreadable)?;
        Ok(Self {
            regular: Face { shaper: regular_face, font: regular, words: HashMap::new() },
            bold: Face { shaper: bold_face, font: bold, words: HashMap::new() },
        })
    }

    fn face(&mut self, style: TextStyle) -> &mut Face {
        if style.bold { &mut self.bold } else { &mut self.regular }
    }

    /// The line shaped, ready to draw.
    pub fn line(&mut self, text: &str, style: TextStyle) -> Line {
        let face = self.face(style);
        let glyphs = face.shape(text);
        let width = glyphs.iter().map(|g| g.x_advance).sum::<f32>() * style.size;
        Line {
            runs: vec![Run { font: face.font.clone(), glyphs, text: text.to_owned(), x: 0.0 }],
            width,
            size: style.size,
        }
    }

    /// Width in points of `text` on one line.
    pub fn width(&mut self, text: &str, style: TextStyle) -> f32 {
        self.line(text, style).width
    }

    /// `text` broken into lines no wider than `max` points: at spaces, and between characters
    /// inside a word wider than the line. Paragraphs (`\n`) start new lines.
    pub fn wrap(&mut self, text: &str, style: TextStyle, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let space = self.width(" ", style);
        for paragraph in text.lines() {
            let mut line = String::new();
            let mut line_width = 0.0;
            for word in paragraph.split_whitespace() {
                let word_width = self.width(word, style);
                let with_word = if line.is_empty() { word_width } else { line_width + space + word_width };
                if with_word <= max {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(word);
                    line_width = with_word;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                line_width = 0.0;
                for c in word.chars() {
                    let width = self.width(c.encode_utf8(&mut [0; 4]), style);
                    if line_width + width > max && !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        line_width = 0.0;
                    }
                    line.push(c);
                    line_width += width;
                }
            }
            lines.push(line);
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        lines
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaping_word_by_word_draws_the_glyphs_of_the_whole_line() {
        let mut typesetter = Typesetter::new().unwrap();
        for line in
            ["Quarantine the flaky tests — then fix them (3 votes, Chloé)", "a  b ", "", "Ελληνικά και кириллица"]
        {
            let face = &typesetter.regular;
            let whole: Vec<_> =
                shape_run(face.shaper, &face.font, line).iter().map(|g| (g.glyph_id, g.text_range.clone())).collect();
            let by_word: Vec<_> =
                typesetter.regular.shape(line).iter().map(|g| (g.glyph_id, g.text_range.clone())).collect();
            assert_eq!(by_word, whole, "{line:?}");
        }
        // Other scripts are shaped a whole line at a time (joining, reordering).
        assert!(!word_by_word("مرحبا بالعالم") && !word_by_word("日本語") && word_by_word("naïve → café"));
    }

    #[test]
    fn wrapping_keeps_every_line_inside_the_width() {
        let mut typesetter = Typesetter::new().unwrap();
        let style = TextStyle::regular(10.5);
        let text = format!("{} {}", "word ".repeat(60), "x".repeat(400));
        let lines = typesetter.wrap(&text, style, 200.0);
        assert!(lines.len() > 5);
        for line in &lines {
            assert!(typesetter.width(line, style) <= 200.0 + 0.01, "{line:?}");
        }
        assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
    }
}
