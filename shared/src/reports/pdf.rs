//! The PDF summary: the same report, paginated on A4, in DejaVu Sans (embedded and subset by
//! krilla), which covers Latin, Greek and Cyrillic; characters outside the font print as its
//! fallback glyph and keep their text in the PDF's text layer. krilla was chosen because it is
//! maintained with typst, embeds and subsets OpenType fonts, and writes a correct ToUnicode map,
//! so every item can be searched and extracted.

use krilla::Document;
use krilla::geom::Point;
use krilla::page::PageSettings;

use super::text::{TextStyle, Typesetter};
use super::{Rendering, Report, Trend};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;

#[derive(Debug, thiserror::Error)]
#[error("the PDF summary could not be rendered: {0}")]
pub struct PdfError(String);

impl PdfError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

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
}

impl Style {
    fn text(self) -> TextStyle {
        TextStyle { size: self.size(), bold: matches!(self, Style::Title | Style::Heading) }
    }
}

/// Lines of text with their style and indent, laid out before any page is drawn.
struct Layout {
    lines: Vec<(Style, f32, String)>,
    typesetter: Typesetter,
}

impl Layout {
    fn push(&mut self, style: Style, indent: f32, text: &str) {
        let max = PAGE_W - 2.0 * MARGIN - indent;
        for line in self.typesetter.wrap(text, style.text(), max) {
            self.lines.push((style, indent, line));
        }
    }
}

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n').collect()
}

pub fn render(report: &Report, rendering: &Rendering<'_>) -> Result<Vec<u8>, PdfError> {
    let mut layout = Layout { lines: Vec::new(), typesetter: Typesetter::new(rendering.fonts)? };

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
            layout.typesetter.draw_text(&mut surface, Point::from_xy(MARGIN + indent, y), &text, style.text());
        }
        let footer = format!("{} — page {page_number}", clean(&c.title));
        let at = Point::from_xy(MARGIN, PAGE_H - MARGIN / 2.0);
        layout.typesetter.draw_text(&mut surface, at, &footer, Style::Small.text());
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
        let pdf =
            render(&retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>()), &Rendering::plain()).unwrap();
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
        assert!(render(&health_check(), &Rendering::plain()).unwrap().starts_with(b"%PDF-"));
    }
}
