//! The PDF summary: the same report, paginated on A4, in DejaVu Sans (embedded and subset by
//! krilla), which covers Latin, Greek and Cyrillic; characters outside the font print as its
//! fallback glyph and keep their text in the PDF's text layer. krilla was chosen because it is
//! maintained with typst, embeds and subsets OpenType fonts, and writes a correct ToUnicode map,
//! so every item can be searched and extracted.

use std::sync::LazyLock;

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};

use super::{Report, Trend};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Parsed once per instance; the font data is static.
static FONTS: LazyLock<Option<(Font, Font)>> =
    LazyLock::new(|| Some((Font::new(REGULAR.into(), 0)?, Font::new(BOLD.into(), 0)?)));

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

    /// Wraps at spaces; a word wider than the line is split between characters.
    fn push(&mut self, style: Style, indent: f32, text: &str) {
        let max = PAGE_W - 2.0 * MARGIN - indent;
        for paragraph in text.lines() {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
                if self.width(style, &candidate) <= max {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    self.lines.push((style, indent, std::mem::take(&mut line)));
                }
                for c in word.chars() {
                    line.push(c);
                    if self.width(style, &line) > max {
                        let last = line.pop().unwrap_or(c);
                        self.lines.push((style, indent, std::mem::take(&mut line)));
                        line.push(last);
                    }
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
            let font = if style.bold() { bold_font.clone() } else { regular_font.clone() };
            surface.draw_text(
                Point::from_xy(MARGIN + indent, y),
                font,
                style.size(),
                &text,
                false,
                TextDirection::Auto,
            );
        }
        surface.draw_text(
            Point::from_xy(MARGIN, PAGE_H - MARGIN / 2.0),
            regular_font.clone(),
            Style::Small.size(),
            &format!("{} — page {page_number}", clean(&c.title)),
            false,
            TextDirection::Auto,
        );
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
    fn a_health_check_renders() {
        assert!(render(&health_check()).unwrap().starts_with(b"%PDF-"));
    }
}
