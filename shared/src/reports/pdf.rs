//! The PDF summary: the same report, paginated on A4, in DejaVu Sans (embedded and subset by
//! krilla), which covers Latin, Greek and Cyrillic; characters outside the font print as its
//! fallback glyph and keep their text in the PDF's text layer. krilla was chosen because it is
//! maintained with typst, embeds and subsets OpenType fonts, and writes a correct ToUnicode map,
//! so every item can be searched and extracted.

use std::sync::LazyLock;

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, GlyphId, KrillaGlyph};

use super::{Report, Trend};

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

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;

#[derive(Debug, thiserror::Error)]
#[error("the PDF summary could not be rendered: {0}")]
pub struct PdfError(String);

#[derive(Clone, Copy)]
enum Style {
    Title,
    Heading,
    Body,
    Small,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 20.0,
            Style::Heading => 14.0,
            Style::Body => 10.5,
            Style::Small => 9.0,
        }
    }

    fn bold(self) -> bool {
        matches!(self, Style::Title | Style::Heading)
    }
}

/// Text whose glyphs depend only on each word (left to right, no joining or reordering across
/// spaces): Latin, Greek, Cyrillic and Armenian with their marks, and the punctuation, arrows and
/// symbols between U+2000 and U+2BFF. Anything else is shaped a whole line at a time.
fn word_by_word(text: &str) -> bool {
    text.chars().all(|c| c < '\u{0590}' || ('\u{2000}'..='\u{2BFF}').contains(&c))
}

/// Shapes the lines of one render, remembering each word it shaped: a report's words repeat
/// (a 1,000-item report shaped line by line spent two thirds of its render time in rustybuzz).
struct Shaper<'f> {
    face: &'f rustybuzz::Face<'static>,
    font: &'f Font,
    words: std::collections::HashMap<String, Vec<KrillaGlyph>>,
}

impl<'f> Shaper<'f> {
    fn new(face: &'f rustybuzz::Face<'static>, font: &'f Font) -> Self {
        Self { face, font, words: std::collections::HashMap::new() }
    }

    fn shape(&mut self, text: &str) -> Vec<KrillaGlyph> {
        if !word_by_word(text) {
            return shape_run(self.face, self.font, text);
        }
        let mut glyphs = Vec::new();
        let mut offset = 0;
        for piece in text.split_inclusive(' ') {
            let shaped = match self.words.get(piece) {
                Some(shaped) => shaped,
                None => self.words.entry(piece.to_owned()).or_insert_with(|| shape_run(self.face, self.font, piece)),
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

/// Lines of text with their style and indent, laid out before any page is drawn.
struct Layout {
    lines: Vec<(Style, f32, String)>,
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
}

impl Layout {
    fn width(&self, style: Style, text: &str) -> f32 {
        let face = if style.bold() { &self.bold } else { &self.regular };
        let scale = style.size() / f32::from(face.units_per_em());
        text.chars()
            .map(|c| {
                let glyph = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
                f32::from(face.glyph_hor_advance(glyph).unwrap_or(0)) * scale
            })
            .sum()
    }

    fn char_width(&self, style: Style, c: char) -> f32 {
        self.width(style, c.encode_utf8(&mut [0; 4]))
    }

    /// Wraps at spaces; a word wider than the line is split between characters. Each word is
    /// measured once and the line's width kept as it grows (measuring the whole candidate line
    /// again for every word made a 1,000-item report's layout quadratic in its line length).
    fn push(&mut self, style: Style, indent: f32, text: &str) {
        let max = PAGE_W - 2.0 * MARGIN - indent;
        let space = self.width(style, " ");
        for paragraph in text.lines() {
            let mut line = String::new();
            let mut line_width = 0.0;
            for word in paragraph.split_whitespace() {
                let word_width = self.width(style, word);
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
                    self.lines.push((style, indent, std::mem::take(&mut line)));
                }
                line_width = 0.0;
                for c in word.chars() {
                    let width = self.char_width(style, c);
                    if line_width + width > max && !line.is_empty() {
                        self.lines.push((style, indent, std::mem::take(&mut line)));
                        line_width = 0.0;
                    }
                    line.push(c);
                    line_width += width;
                }
            }
            self.lines.push((style, indent, line));
        }
    }
}

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n').collect()
}

pub fn render(report: &Report) -> Result<Vec<u8>, PdfError> {
    let (regular_font, bold_font) = FONTS.clone().ok_or_else(|| PdfError("the embedded font is unreadable".into()))?;
    let (regular_face, bold_face) = FACES.as_ref().ok_or_else(|| PdfError("the embedded font is unreadable".into()))?;
    let (mut regular, mut bold) = (Shaper::new(regular_face, &regular_font), Shaper::new(bold_face, &bold_font));
    let face = |data| ttf_parser::Face::parse(data, 0).map_err(|e| PdfError(e.to_string()));
    let mut layout = Layout { lines: Vec::new(), regular: face(REGULAR)?, bold: face(BOLD)? };

    let c = report.common();
    layout.push(Style::Title, 0.0, &clean(&c.title));
    let mut meta = vec![format!("{} · {} · {}", report.kind_label(), clean(&c.team), c.date)];
    if let Some(f) = &c.facilitator {
        meta.push(format!("Facilitator: {}", clean(f)));
    }
    if !c.participants.is_empty() {
        meta.push(format!("Participants: {}", clean(&c.participants.join(", "))));
    }
    for line in meta {
        layout.push(Style::Small, 0.0, &line);
    }
    match report {
        Report::Retrospective(r) => {
            for section in &r.sections {
                layout.push(Style::Heading, 0.0, &clean(&section.title));
                for item in section.items_by_votes() {
                    let author = item.author.as_deref().map(|a| format!(", {}", clean(a))).unwrap_or_default();
                    layout.push(Style::Body, 12.0, &format!("• {} ({} votes{author})", clean(&item.text), item.votes));
                }
            }
            if !r.action_items.is_empty() {
                layout.push(Style::Heading, 0.0, "Action items");
                for a in &r.action_items {
                    let mut line = format!("☐ {}", clean(&a.title));
                    if let Some(email) = &a.assignee_email {
                        line.push_str(&format!(" — {}", clean(email)));
                    }
                    if let Some(due) = &a.due_date {
                        line.push_str(&format!(" (due {due})"));
                    }
                    layout.push(Style::Body, 12.0, &line);
                }
            }
        }
        Report::HealthCheck(h) => {
            layout.push(Style::Heading, 0.0, "Dimensions");
            for d in &h.dimensions {
                let trend = match d.trend {
                    Trend::Up => "↑",
                    Trend::Down => "↓",
                    Trend::Flat => "→",
                };
                layout.push(Style::Body, 0.0, &format!("{}: {:.1} / 10 {trend}", clean(&d.name), d.score));
                for comment in &d.comments {
                    layout.push(Style::Small, 12.0, &format!("“{}”", clean(comment)));
                }
            }
        }
    }

    let mut document = Document::new();
    let settings = || PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| PdfError("page size".into()));
    let mut lines = layout.lines.into_iter().peekable();
    let mut page_number = 0;
    while lines.peek().is_some() {
        page_number += 1;
        let mut page = document.start_page_with(settings()?);
        let mut surface = page.surface();
        let mut y = MARGIN;
        while let Some((style, indent, _)) = lines.peek() {
            let gap = if matches!(style, Style::Heading) { style.size() * 0.8 } else { 0.0 };
            let advance = style.size() * 1.35 + gap;
            if y + advance > PAGE_H - MARGIN && y > MARGIN {
                break;
            }
            let (style, indent, text) = (*style, *indent, lines.next().map(|l| l.2).unwrap_or_default());
            y += advance;
            let shaper = if style.bold() { &mut bold } else { &mut regular };
            let glyphs = shaper.shape(&text);
            surface.draw_glyphs(
                Point::from_xy(MARGIN + indent, y),
                &glyphs,
                shaper.font.clone(),
                &text,
                style.size(),
                false,
            );
        }
        let footer = format!("{} — page {page_number}", clean(&c.title));
        let glyphs = regular.shape(&footer);
        let at = Point::from_xy(MARGIN, PAGE_H - MARGIN / 2.0);
        surface.draw_glyphs(at, &glyphs, regular_font.clone(), &footer, Style::Small.size(), false);
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| PdfError(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::tests::{health_check, retrospective};

    #[test]
    fn a_retrospective_renders_to_a_pdf_over_several_pages() {
        let items: Vec<String> = (0..120).map(|i| format!("Item number {i} about Ελληνικά и кириллица")).collect();
        let pdf = render(&retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.matches("/Type /Page").count() + text.matches("/Type/Page").count() >= 3,
            "expected several pages"
        );
        // The font is embedded (subset), not referenced.
        assert!(text.contains("FontFile2") || text.contains("FontFile3"));
    }

    #[test]
    fn shaping_word_by_word_draws_the_glyphs_of_the_whole_line() {
        let (font, _) = FONTS.clone().unwrap();
        let (face, _) = FACES.as_ref().unwrap();
        let mut shaper = Shaper::new(face, &font);
        for line in
            ["Quarantine the flaky tests — then fix them (3 votes, Chloé)", "a  b ", "", "Ελληνικά και кириллица"]
        {
            let whole: Vec<_> =
                shape_run(face, &font, line).iter().map(|g| (g.glyph_id, g.text_range.clone())).collect();
            let by_word: Vec<_> = shaper.shape(line).iter().map(|g| (g.glyph_id, g.text_range.clone())).collect();
            assert_eq!(by_word, whole, "{line:?}");
        }
        // Other scripts are shaped a whole line at a time (joining, reordering).
        assert!(!word_by_word("مرحبا بالعالم") && !word_by_word("日本語") && word_by_word("naïve → café"));
    }

    #[test]
    fn a_health_check_renders() {
        assert!(render(&health_check()).unwrap().starts_with(b"%PDF-"));
    }
}
