//! The PDF summary: the same report on A4 pages, with pictures where people would rather look
//! than read — a health check's scores as horizontal bars coloured by band, a retrospective's
//! votes as small bars with the top items highlighted — drawn as vector paths (no raster images).
//!
//! Colour is never the only cue: every bar has its number, its band's name and its trend printed
//! next to it. The document is tagged (headings, paragraphs, lists, the action-items table, each
//! chart a Figure whose alt text says the numbers), has an outline, metadata (title, author =
//! team, language, creator) and clickable links, and is checked by krilla's validators for
//! PDF/A-2b and PDF/UA-1 ([`render`] says when it falls back).
//!
//! Text goes through [`Typesetter`] only (fonts, fallback, shaping). krilla was chosen because it
//! is maintained with typst, embeds and subsets OpenType fonts, writes a correct ToUnicode map
//! (every item can be searched and extracted) and builds tagged PDF.
//!
//! The layout is done in two passes: [`Layout`] places every piece of text and every rectangle
//! on its page and builds the tag tree's shape; the drawing pass then knows the page count
//! ("page 2 of 5") and writes each piece as marked content under its tag.

use std::num::NonZeroU16;

use krilla::action::LinkAction;
use krilla::annotation::{Annotation, LinkAnnotation, Target};
use krilla::color::rgb;
use krilla::configure::{Accessibility, Archival, Configuration, ConfigurationBuilder};
use krilla::destination::XyzDestination;
use krilla::error::KrillaError;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule};
use krilla::surface::Surface;
use krilla::tagging::{
    Artifact, ArtifactType, ContentTag, ListNumbering, SpanTag, TableHeaderScope, Tag, TagGroup, TagKind, TagTree,
};
use krilla::{Document, SerializeSettings};

use super::labels::Labels;
use super::text::{TextStyle, Typesetter};
use super::{Dimension, HealthCheck, Locale, Rendering, Report, Retrospective, Section, Trend};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Where the body starts and ends: the running title above, the page number below.
const TOP: f32 = 66.0;
const BOTTOM: f32 = PAGE_H - 56.0;
const LEADING: f32 = 1.35;

/// Width of a health check's 0–10 bar.
const BAR_W: f32 = 220.0;
const BAR_H: f32 = 12.0;
/// Width of the longest vote bar (the section's most voted item).
const VOTE_W: f32 = 28.0;
const VOTE_H: f32 = 6.0;
/// The left column of a retrospective item: vote bar, votes, rank.
const ITEM_LEFT: f32 = 86.0;
/// How many of a section's most voted items are highlighted (those with at least one vote).
const TOP_ITEMS: usize = 3;

#[derive(Debug, thiserror::Error)]
#[error("the PDF summary could not be rendered: {0}")]
pub struct PdfError(String);

impl PdfError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// sRGB, 0–255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

pub const INK: Rgb = Rgb(0x21, 0x21, 0x21);
pub const MUTED: Rgb = Rgb(0x5f, 0x63, 0x68);
pub const LINK: Rgb = Rgb(0x0b, 0x57, 0xd0);
/// The score bands' bar colours (the tests look for these pixels).
pub const RED: Rgb = Rgb(0xd3, 0x2f, 0x2f);
pub const AMBER: Rgb = Rgb(0xf5, 0xa6, 0x23);
pub const GREEN: Rgb = Rgb(0x2e, 0x7d, 0x32);
/// The unfilled part of a 0–10 bar, and the previous score's marker.
pub const TRACK: Rgb = Rgb(0xe3, 0xe6, 0xea);
pub const MARKER: Rgb = Rgb(0x10, 0x10, 0x10);
/// Vote bars, the top items' background, the table header's and the header block's background.
pub const VOTE: Rgb = Rgb(0x15, 0x65, 0xc0);
pub const HIGHLIGHT: Rgb = Rgb(0xff, 0xf3, 0xc4);
pub const SHADE: Rgb = Rgb(0xf1, 0xf3, 0xf5);
const RULE: Rgb = Rgb(0xc8, 0xcc, 0xd0);

/// A score's band: below 4, 4 to below 7, 7 and above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Low,
    Mid,
    High,
}

impl Band {
    pub fn of(score: f32) -> Self {
        if score >= 7.0 {
            Band::High
        } else if score >= 4.0 {
            Band::Mid
        } else {
            Band::Low
        }
    }

    pub fn color(self) -> Rgb {
        match self {
            Band::Low => RED,
            Band::Mid => AMBER,
            Band::High => GREEN,
        }
    }

    fn label(self, labels: &Labels) -> &'static str {
        match self {
            Band::Low => labels.band_low,
            Band::Mid => labels.band_mid,
            Band::High => labels.band_high,
        }
    }
}

fn trend(trend: Trend, labels: &Labels) -> (&'static str, &'static str) {
    match trend {
        Trend::Up => ("↑", labels.trend_up),
        Trend::Down => ("↓", labels.trend_down),
        Trend::Flat => ("→", labels.trend_flat),
    }
}

/// A score as the PDF prints it, inside 0–10 whatever it is given.
fn score(value: f32) -> f32 {
    if value.is_finite() { value.clamp(0.0, 10.0) } else { 0.0 }
}

/// The document's language (BCP 47, as the PDF's `/Lang` wants it).
fn language(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "en",
        Locale::De => "de",
        Locale::Fr => "fr",
        Locale::Es => "es",
        Locale::Pt => "pt",
        Locale::Ja => "ja",
    }
}

fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n').collect()
}

#[derive(Clone, Copy)]
enum Style {
    Title,
    Heading,
    Subheading,
    Body,
    Small,
}

impl Style {
    fn text(self) -> TextStyle {
        match self {
            Style::Title => TextStyle::bold(20.0),
            Style::Heading => TextStyle::bold(14.0),
            Style::Subheading => TextStyle::bold(11.0),
            Style::Body => TextStyle::regular(10.5),
            Style::Small => TextStyle::regular(9.0),
        }
    }

    fn line_height(self) -> f32 {
        self.text().size * LEADING
    }
}

/// How a piece of drawn content is marked: part of the tag tree (leaf `n`) or an artifact.
#[derive(Clone, Copy)]
enum Mark {
    Content(usize),
    Artifact(ArtifactType),
}

enum Shape {
    Text { text: String, style: TextStyle, color: Rgb },
    Rect { w: f32, h: f32, color: Rgb },
}

/// One thing drawn on a page: text with its baseline's left end at (x, y), or a rectangle with
/// its top-left corner there.
struct Op {
    x: f32,
    y: f32,
    shape: Shape,
    mark: Mark,
}

struct LinkOp {
    rect: Rect,
    url: String,
    alt: String,
    leaf: usize,
}

#[derive(Default)]
struct PageOps {
    ops: Vec<Op>,
    links: Vec<LinkOp>,
}

enum Kid {
    Group(usize),
    Leaf(usize),
}

/// The tag tree's shape, built during layout; its leaves get their identifiers while drawing.
struct Tree {
    groups: Vec<(Option<TagKind>, Vec<Kid>)>,
    leaves: usize,
}

/// The root of the tree (its children become the tag tree's).
const ROOT: usize = 0;

impl Tree {
    fn new() -> Self {
        Self { groups: vec![(None, Vec::new())], leaves: 0 }
    }

    fn group(&mut self, parent: usize, tag: impl Into<TagKind>) -> usize {
        self.groups.push((Some(tag.into()), Vec::new()));
        let id = self.groups.len() - 1;
        if let Some(g) = self.groups.get_mut(parent) {
            g.1.push(Kid::Group(id));
        }
        id
    }

    fn leaf(&mut self, parent: usize) -> usize {
        let id = self.leaves;
        self.leaves += 1;
        if let Some(g) = self.groups.get_mut(parent) {
            g.1.push(Kid::Leaf(id));
        }
        id
    }

    /// The tag tree, each leaf replaced by the identifier its content was drawn under.
    fn build(&self, ids: &mut [Option<krilla::tagging::Identifier>], lang: &str) -> TagTree {
        fn group(tree: &Tree, g: usize, ids: &mut [Option<krilla::tagging::Identifier>]) -> Vec<krilla::tagging::Node> {
            let Some((_, kids)) = tree.groups.get(g) else { return Vec::new() };
            let mut nodes = Vec::with_capacity(kids.len());
            for kid in kids {
                match kid {
                    Kid::Leaf(l) => {
                        if let Some(id) = ids.get_mut(*l).and_then(Option::take) {
                            nodes.push(id.into());
                        }
                    }
                    Kid::Group(child) => {
                        let children = group(tree, *child, ids);
                        if let (false, Some((Some(tag), _))) = (children.is_empty(), tree.groups.get(*child)) {
                            nodes.push(TagGroup::with_children(tag.clone(), children).into());
                        }
                    }
                }
            }
            nodes
        }
        let mut tree = TagTree::new().with_lang(Some(lang.to_owned()));
        for node in group(self, ROOT, ids) {
            tree.push(node);
        }
        tree
    }
}

/// Everything placed, page by page, before anything is drawn.
struct Layout {
    typesetter: Typesetter,
    labels: &'static Labels,
    pages: Vec<PageOps>,
    y: f32,
    tree: Tree,
    /// (level, text, page, y) of each heading, for the outline.
    outline: Vec<(u16, String, usize, f32)>,
}

impl Layout {
    fn page(&mut self) -> &mut PageOps {
        if self.pages.is_empty() {
            self.pages.push(PageOps::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn page_index(&self) -> usize {
        self.pages.len().saturating_sub(1)
    }

    fn new_page(&mut self) {
        self.pages.push(PageOps::default());
        self.y = TOP;
    }

    /// Starts a new page unless `height` more points fit on this one (or this one is empty).
    fn room(&mut self, height: f32) {
        if self.y + height > BOTTOM && self.y > TOP {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, y: f32, text: String, style: TextStyle, color: Rgb, mark: Mark) {
        self.page().ops.push(Op { x, y, shape: Shape::Text { text, style, color }, mark });
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb, mark: Mark) {
        if w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite() {
            self.page().ops.push(Op { x, y, shape: Shape::Rect { w, h, color }, mark });
        }
    }

    /// `text` wrapped into `width` at `x`, flowing over pages, each line a leaf of `parent`.
    fn lines(&mut self, parent: usize, x: f32, width: f32, text: &str, style: Style, color: Rgb) {
        let lh = style.line_height();
        for line in self.typesetter.wrap(text, style.text(), width) {
            self.room(lh);
            self.y += lh;
            let leaf = self.tree.leaf(parent);
            let baseline = self.y - lh * 0.25;
            self.text(x, baseline, line, style.text(), color, Mark::Content(leaf));
        }
    }

    fn paragraph(&mut self, parent: usize, indent: f32, text: &str, style: Style, color: Rgb) {
        let p = self.tree.group(parent, Tag::P);
        self.lines(p, MARGIN + indent, CONTENT_W - indent, text, style, color);
    }

    /// A heading kept with at least `keep` points of what follows it.
    fn heading(&mut self, parent: usize, level: u16, text: &str, keep: f32) -> usize {
        let style = match level {
            1 => Style::Title,
            2 => Style::Heading,
            _ => Style::Subheading,
        };
        let gap = if level == 1 { 0.0 } else { style.text().size * 0.7 };
        self.room(gap + style.line_height() + keep);
        if self.y > TOP {
            self.y += gap;
        }
        let level_nz = NonZeroU16::new(level).unwrap_or(NonZeroU16::MIN);
        let h = self.tree.group(parent, Tag::Hn(level_nz, Some(text.to_owned())));
        self.outline.push((level, text.to_owned(), self.page_index(), self.y));
        self.lines(h, MARGIN, CONTENT_W, text, style, INK);
        h
    }

    /// One line of link text at `x` (current line), underlined, with its annotation.
    fn link(&mut self, parent: usize, x: f32, text: &str, url: &str, style: TextStyle) -> f32 {
        let link = self.tree.group(parent, Tag::Link);
        let leaf = self.tree.leaf(link);
        let width = self.typesetter.width(text, style);
        let baseline = self.y - style.size * LEADING * 0.25;
        self.text(x, baseline, text.to_owned(), style, LINK, Mark::Content(leaf));
        self.rect(x, baseline + 1.5, width, 0.6, LINK, Mark::Artifact(ArtifactType::Layout));
        let annot = self.tree.leaf(link);
        if let Some(rect) = Rect::from_xywh(x, baseline - style.size, width.max(1.0), style.size * 1.3) {
            let page = self.page();
            page.links.push(LinkOp { rect, url: url.to_owned(), alt: format!("{text}: {url}"), leaf: annot });
        }
        width
    }

    /// The block under the title: kind, team, date, facilitator, participants, the app link.
    fn header(&mut self, report: &Report, locale: Locale) {
        let c = report.common();
        let l = self.labels;
        self.heading(ROOT, 1, &clean(&c.title), 4.0 * Style::Body.line_height());
        let kind = match report {
            Report::Retrospective(_) => l.retrospective,
            Report::HealthCheck(_) => l.health_check,
        };
        let mut lines = vec![
            format!("{}: {kind}", l.kind),
            format!("{}: {}", l.team, clean(&c.team)),
            format!("{}: {}", l.date, locale.date(&c.date)),
        ];
        if let Some(f) = c.facilitator.as_deref().filter(|f| !f.trim().is_empty()) {
            lines.push(format!("{}: {}", l.facilitator, clean(f)));
        }
        if !c.participants.is_empty() {
            lines.push(format!("{}: {}", l.participants, clean(&c.participants.join(", "))));
        }
        let pad = 6.0;
        self.y += pad;
        let start = (self.page_index(), self.page().ops.len(), self.y - pad);
        let block = self.tree.group(ROOT, Tag::Div);
        for line in &lines {
            self.paragraph(block, 8.0, line, Style::Body, INK);
        }
        let lh = Style::Body.line_height();
        self.room(lh);
        self.y += lh;
        let p = self.tree.group(block, Tag::P);
        let url = c.link.clone();
        self.link(p, MARGIN + 8.0, l.open_in_app, &url, Style::Body.text());
        self.y += pad;
        self.background(start, SHADE);
        self.y += 4.0;
    }

    /// A background rectangle behind everything placed since `start` (page, op index, top), on
    /// each page it spans, inserted beneath those ops.
    fn background(&mut self, start: (usize, usize, f32), color: Rgb) {
        let (first, index, top) = start;
        let last = self.page_index();
        for page in first..=last {
            let (from, to) = (if page == first { top } else { TOP - 4.0 }, if page == last { self.y } else { BOTTOM });
            let at = if page == first { index } else { 0 };
            if let Some(ops) = self.pages.get_mut(page).map(|p| &mut p.ops)
                && to > from
            {
                let op = Op {
                    x: MARGIN,
                    y: from,
                    shape: Shape::Rect { w: CONTENT_W, h: to - from, color },
                    mark: Mark::Artifact(ArtifactType::Layout),
                };
                ops.insert(at.min(ops.len()), op);
            }
        }
    }

    fn health_check(&mut self, h: &HealthCheck) {
        let l = self.labels;
        let scores: Vec<f32> = h.dimensions.iter().map(|d| score(d.score)).collect();
        let mean = if scores.is_empty() { 0.0 } else { scores.iter().sum::<f32>() / scores.len() as f32 };
        let count = |band: Band| scores.iter().filter(|s| Band::of(**s) == band).count();
        self.heading(ROOT, 2, l.summary, 2.0 * Style::Body.line_height());
        let summary = format!(
            "{} {mean:.1} / 10 · {}: {} · {} {} · {} {} · {} {}",
            l.mean,
            l.dimensions,
            scores.len(),
            count(Band::High),
            l.band_high,
            count(Band::Mid),
            l.band_mid,
            count(Band::Low),
            l.band_low,
        );
        self.paragraph(ROOT, 0.0, &summary, Style::Body, INK);
        self.heading(ROOT, 2, l.dimensions, 3.0 * Style::Body.line_height());
        for d in &h.dimensions {
            self.dimension(d);
        }
    }

    /// A dimension's name, its bar (a Figure), and its comments.
    fn dimension(&mut self, d: &Dimension) {
        let l = self.labels;
        let value = score(d.score);
        let band = Band::of(value);
        let (arrow, word) = trend(d.trend, l);
        let previous = d.previous_score.map(score);
        let mut label = format!("{value:.1} / 10 · {} · {arrow} {word}", band.label(l));
        if let Some(p) = previous {
            label.push_str(&format!(" · {} {p:.1}", l.previous));
        }
        let name = clean(&d.name);
        let label_x = MARGIN + BAR_W + 10.0;
        let label_lines = self.typesetter.wrap(&label, Style::Small.text(), PAGE_W - MARGIN - label_x);
        let row = (BAR_H + 10.0).max(label_lines.len() as f32 * Style::Small.line_height() + 4.0);
        self.heading(ROOT, 3, &name, row);

        let alt = format!("{name}: {label}");
        let figure = self.tree.group(ROOT, Tag::Figure(Some(alt)));
        self.room(row);
        let top = self.y + 4.0;
        let x = MARGIN;
        let fill = BAR_W * value / 10.0;
        let leaf = self.tree.leaf(figure);
        self.rect(x, top, BAR_W, BAR_H, TRACK, Mark::Content(leaf));
        let leaf = self.tree.leaf(figure);
        self.rect(x, top, fill, BAR_H, band.color(), Mark::Content(leaf));
        if let Some(p) = previous {
            let leaf = self.tree.leaf(figure);
            let at = (x + BAR_W * p / 10.0 - 1.0).clamp(x, x + BAR_W - 2.0);
            self.rect(at, top - 3.0, 2.0, BAR_H + 6.0, MARKER, Mark::Content(leaf));
        }
        let lh = Style::Small.line_height();
        for (i, line) in label_lines.into_iter().enumerate() {
            let leaf = self.tree.leaf(figure);
            let baseline = top + BAR_H * 0.8 + i as f32 * lh;
            self.text(label_x, baseline, line, Style::Small.text(), INK, Mark::Content(leaf));
        }
        self.y += row;
        for comment in &d.comments {
            self.paragraph(ROOT, 12.0, &format!("“{}”", clean(comment)), Style::Small, MUTED);
        }
        self.y += 4.0;
    }

    fn retrospective(&mut self, r: &Retrospective, rendering: &Rendering<'_>) {
        for section in &r.sections {
            self.section(section);
        }
        if !r.action_items.is_empty() {
            self.action_items(r, rendering);
        }
    }

    fn section(&mut self, section: &Section) {
        let l = self.labels;
        let items = section.items_by_votes();
        let max = items.first().map_or(0, |i| i.votes);
        self.heading(ROOT, 2, &clean(&section.title), 2.0 * Style::Body.line_height());
        let list = self.tree.group(ROOT, Tag::L(ListNumbering::None));
        let lh = Style::Body.line_height();
        for (rank, item) in items.into_iter().enumerate() {
            let top = rank < TOP_ITEMS && item.votes > 0;
            let li = self.tree.group(list, Tag::LI);
            let lbl = self.tree.group(li, Tag::Lbl);
            let body = self.tree.group(li, Tag::LBody);
            let text_x = MARGIN + ITEM_LEFT;
            let text_w = CONTENT_W - ITEM_LEFT - 6.0;
            let mut right: Vec<(String, Style, Rgb)> = self
                .typesetter
                .wrap(&clean(&item.text), Style::Body.text(), text_w)
                .into_iter()
                .map(|line| (line, Style::Body, INK))
                .collect();
            let text_lines = right.len();
            let mut meta = Vec::new();
            if let Some(a) = item.author.as_deref().filter(|a| !a.trim().is_empty()) {
                meta.push(format!("{} {}", l.by, clean(a)));
            }
            if let Some(g) = item.group.as_deref().filter(|g| !g.trim().is_empty()) {
                meta.push(format!("{} {}", l.group, clean(g)));
            }
            if !meta.is_empty() {
                for line in self.typesetter.wrap(&meta.join(" · "), Style::Small.text(), text_w) {
                    right.push((line, Style::Small, MUTED));
                }
            }
            let rows = right.len().max(if top { 2 } else { 1 });
            // Keep the first two rows together with the votes.
            self.room(lh * rows.min(2) as f32 + 4.0);
            self.y += 2.0;
            let start = (self.page_index(), self.page().ops.len(), self.y);
            let p = self.tree.group(body, Tag::P);
            let meta_p = if right.len() > text_lines { Some(self.tree.group(body, Tag::P)) } else { None };
            let mut right = right.into_iter();
            for row in 0..rows {
                self.room(lh);
                self.y += lh;
                let baseline = self.y - lh * 0.25;
                if row == 0 {
                    let w = if max == 0 { 0.0 } else { VOTE_W * item.votes as f32 / max as f32 };
                    self.rect(
                        MARGIN + 4.0,
                        baseline - VOTE_H,
                        w.max(0.0),
                        VOTE_H,
                        VOTE,
                        Mark::Artifact(ArtifactType::Layout),
                    );
                    let leaf = self.tree.leaf(lbl);
                    let votes = l.votes(item.votes);
                    self.text(MARGIN + 8.0 + VOTE_W, baseline, votes, Style::Small.text(), INK, Mark::Content(leaf));
                }
                if row == 1 && top {
                    let leaf = self.tree.leaf(lbl);
                    self.text(
                        MARGIN + 8.0 + VOTE_W,
                        baseline,
                        format!("#{}", rank + 1),
                        TextStyle::bold(9.0),
                        INK,
                        Mark::Content(leaf),
                    );
                }
                if let Some((line, style, color)) = right.next() {
                    let parent = if row < text_lines { p } else { meta_p.unwrap_or(p) };
                    let leaf = self.tree.leaf(parent);
                    self.text(text_x, baseline, line, style.text(), color, Mark::Content(leaf));
                }
            }
            self.y += 2.0;
            if top {
                self.background(start, HIGHLIGHT);
            }
        }
    }

    fn action_items(&mut self, r: &Retrospective, rendering: &Rendering<'_>) {
        let l = self.labels;
        let locale = rendering.locale;
        self.heading(ROOT, 2, l.action_items, 3.0 * Style::Body.line_height());
        let widths = [CONTENT_W - 130.0 - 70.0 - 66.0, 130.0, 70.0, 66.0];
        let headers = [l.action_items, l.assignee, l.due, l.issue];
        let table = self.tree.group(ROOT, Tag::Table);
        let head = self.tree.group(table, Tag::THead);
        let tr = self.tree.group(head, Tag::TR);
        let cells: Vec<usize> = (0..4).map(|_| self.tree.group(tr, Tag::TH(TableHeaderScope::Column))).collect();
        self.table_header(&headers, &widths, Some(&cells));
        let tbody = self.tree.group(table, Tag::TBody);
        let style = Style::Small;
        let lh = style.line_height();
        for a in &r.action_items {
            let tr = self.tree.group(tbody, Tag::TR);
            let assignee = a
                .assignee_email
                .as_deref()
                .or(a.assignee_username.as_deref())
                .or(a.assignee_account_id.as_deref())
                .map(clean)
                .unwrap_or_else(|| "–".to_owned());
            let due = a.due_date.as_deref().map(|d| locale.date(d)).unwrap_or_else(|| "–".to_owned());
            let texts = [clean(&a.title), assignee, due];
            let columns: Vec<Vec<String>> =
                texts.iter().zip(widths).map(|(t, w)| self.typesetter.wrap(t, style.text(), w - 8.0)).collect();
            let issue = rendering.issues.get(&a.id);
            let rows = columns.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let tds: Vec<usize> = (0..4).map(|_| self.tree.group(tr, Tag::TD)).collect();
            self.room(lh + 4.0);
            if self.y == TOP {
                self.table_header(&headers, &widths, None);
            }
            self.y += 2.0;
            for row in 0..rows {
                if self.y + lh > BOTTOM {
                    self.new_page();
                    self.table_header(&headers, &widths, None);
                }
                self.y += lh;
                let baseline = self.y - lh * 0.25;
                let mut x = MARGIN;
                for (col, lines) in columns.iter().enumerate() {
                    if let Some(line) = lines.get(row) {
                        let leaf = self.tree.leaf(tds[col]);
                        self.text(x + 4.0, baseline, line.clone(), style.text(), INK, Mark::Content(leaf));
                    }
                    x += widths[col];
                }
                if row == 0 {
                    match issue {
                        Some(issue) => {
                            let key = clean(&issue.key);
                            self.link(tds[3], x + 4.0, &key, &issue.url, style.text());
                        }
                        None => {
                            let leaf = self.tree.leaf(tds[3]);
                            self.text(x + 4.0, baseline, "–".to_owned(), style.text(), MUTED, Mark::Content(leaf));
                        }
                    }
                }
            }
            self.y += 3.0;
            self.rect(MARGIN, self.y, CONTENT_W, 0.6, RULE, Mark::Artifact(ArtifactType::Layout));
        }
    }

    /// The table's header row; its cells are tagged once (`cells`), repeated on later pages as
    /// artifacts.
    fn table_header(&mut self, headers: &[&str; 4], widths: &[f32; 4], cells: Option<&[usize]>) {
        let style = TextStyle::bold(9.0);
        let lh = 9.0 * LEADING + 4.0;
        self.room(lh * 2.0);
        let top = self.y;
        self.rect(MARGIN, top, CONTENT_W, lh, SHADE, Mark::Artifact(ArtifactType::Layout));
        let baseline = top + lh - 5.0;
        let mut x = MARGIN;
        for (i, header) in headers.iter().enumerate() {
            let line = self.typesetter.wrap(header, style, widths[i] - 8.0).into_iter().next().unwrap_or_default();
            let mark = match cells.and_then(|c| c.get(i)) {
                Some(cell) => Mark::Content(self.tree.leaf(*cell)),
                None => Mark::Artifact(ArtifactType::Layout),
            };
            self.text(x + 4.0, baseline, line, style, INK, mark);
            x += widths[i];
        }
        self.y = top + lh;
    }
}

fn fill(color: Rgb) -> Fill {
    Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        opacity: NormalizedF32::ONE,
        rule: FillRule::NonZero,
    }
}

/// What the PDF is checked against: PDF/A-2b (archival) and PDF/UA-1 (accessibility), both on
/// PDF 1.7.
fn validated() -> Option<Configuration> {
    ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_B)
        .with_accessibility_validator(Accessibility::UA1)
        .finish()
        .ok()
}

/// Renders the report's PDF summary. It is validated as PDF/A-2b and PDF/UA-1; a report the
/// validators refuse (for example text the fonts have no glyph for, which both forbid) is
/// rendered again without them rather than not at all.
pub fn render(report: &Report, rendering: &Rendering<'_>) -> Result<Vec<u8>, PdfError> {
    let mut layout = layout(report, rendering)?;
    if let Some(configuration) = validated() {
        match draw(&mut layout, report, rendering, configuration) {
            Ok(pdf) => return Ok(pdf),
            Err(KrillaError::Validation(errors)) => {
                let first = errors.first().map(|(e, _)| format!("{e:?}")).unwrap_or_default();
                let first: String = first.chars().take(200).collect();
                tracing::warn!(errors = errors.len(), first = %first, "the PDF summary is not PDF/A-2b and PDF/UA-1; rendering it without the validators");
            }
            Err(e) => return Err(PdfError(format!("{e:?}").chars().take(500).collect())),
        }
    }
    draw(&mut layout, report, rendering, Configuration::default())
        .map_err(|e| PdfError(format!("{e:?}").chars().take(500).collect()))
}

fn layout(report: &Report, rendering: &Rendering<'_>) -> Result<Layout, PdfError> {
    let mut layout = Layout {
        typesetter: Typesetter::new(rendering.fonts)?,
        labels: rendering.locale.labels(),
        pages: vec![PageOps::default()],
        y: TOP,
        tree: Tree::new(),
        outline: Vec::new(),
    };
    layout.header(report, rendering.locale);
    match report {
        Report::Retrospective(r) => layout.retrospective(r, rendering),
        Report::HealthCheck(h) => layout.health_check(h),
    }
    Ok(layout)
}

fn creation_date(iso: &str) -> Option<DateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(iso, &format).ok()?;
    let year = u16::try_from(date.year()).ok()?;
    Some(DateTime::new(year).month(date.month() as u8).day(date.day()).hour(0).minute(0).second(0).utc_offset_hour(0))
}

fn draw(
    layout: &mut Layout,
    report: &Report,
    rendering: &Rendering<'_>,
    configuration: Configuration,
) -> Result<Vec<u8>, KrillaError> {
    let c = report.common();
    let labels = layout.labels;
    let lang = language(rendering.locale);
    let settings = SerializeSettings { configuration, enable_tagging: true, ..SerializeSettings::default() };
    let mut document = Document::new_with(settings);
    let title = clean(&c.title);
    let kind = match report {
        Report::Retrospective(_) => labels.retrospective,
        Report::HealthCheck(_) => labels.health_check,
    };
    // The report's own date, so that the same report renders to the same bytes.
    let mut metadata = Metadata::new()
        .title(title.clone())
        .authors(vec![clean(&c.team)])
        .language(lang.to_owned())
        .creator("Atlassian Bridge".to_owned())
        .description(format!("{kind} · {} · {}", clean(&c.team), c.date));
    if let Some(date) = creation_date(&c.date) {
        metadata = metadata.creation_date(date);
    }
    document.set_metadata(metadata);

    // The running title, cut to one line.
    let typesetter = &mut layout.typesetter;
    let running = {
        let style = Style::Small.text();
        let mut lines = typesetter.wrap(&title, style, CONTENT_W - 120.0).into_iter();
        let first = lines.next().unwrap_or_default();
        if lines.next().is_some() { format!("{first} …") } else { first }
    };

    let mut ids: Vec<Option<krilla::tagging::Identifier>> = (0..layout.tree.leaves).map(|_| None).collect();
    let total = layout.pages.len();
    let page_settings = PageSettings::from_wh(PAGE_W, PAGE_H);
    for (index, page_ops) in layout.pages.iter().enumerate() {
        let mut page = match page_settings.clone() {
            Some(settings) => document.start_page_with(settings),
            None => document.start_page(),
        };
        {
            let mut surface = page.surface();
            // Running title and page number: pagination artifacts, not content.
            surface.start_tagged(ContentTag::Artifact(Artifact::with_kind(ArtifactType::Header)));
            surface.set_fill(Some(fill(MUTED)));
            typesetter.draw_text(&mut surface, Point::from_xy(MARGIN, 36.0), &running, Style::Small.text());
            surface.end_tagged();
            rule(&mut surface, 42.0);
            surface.start_tagged(ContentTag::Artifact(Artifact::with_kind(ArtifactType::Footer)));
            surface.set_fill(Some(fill(MUTED)));
            let number = labels.page_of(index + 1, total);
            let width = typesetter.width(&number, Style::Small.text());
            typesetter.draw_text(
                &mut surface,
                Point::from_xy(PAGE_W - MARGIN - width, PAGE_H - 30.0),
                &number,
                Style::Small.text(),
            );
            surface.end_tagged();

            for op in &page_ops.ops {
                let tag = match op.mark {
                    Mark::Artifact(kind) => ContentTag::Artifact(Artifact::with_kind(kind)),
                    Mark::Content(_) => match op.shape {
                        Shape::Text { .. } => ContentTag::Span(SpanTag::empty()),
                        Shape::Rect { .. } => ContentTag::Other,
                    },
                };
                let id = surface.start_tagged(tag);
                match &op.shape {
                    Shape::Text { text, style, color } => {
                        surface.set_fill(Some(fill(*color)));
                        typesetter.draw_text(&mut surface, Point::from_xy(op.x, op.y), text, *style);
                    }
                    Shape::Rect { w, h, color } => {
                        surface.set_fill(Some(fill(*color)));
                        if let Some(rect) = Rect::from_xywh(op.x, op.y, *w, *h) {
                            let mut path = PathBuilder::new();
                            path.push_rect(rect);
                            if let Some(path) = path.finish() {
                                surface.draw_path(&path);
                            }
                        }
                    }
                }
                surface.end_tagged();
                if let Mark::Content(leaf) = op.mark
                    && let Some(slot) = ids.get_mut(leaf)
                {
                    *slot = Some(id);
                }
            }
            surface.finish();
        }
        for link in &page_ops.links {
            let target = Target::Action(LinkAction::new(link.url.clone()).into());
            let annotation = Annotation::new_link(LinkAnnotation::new(link.rect, target), Some(link.alt.clone()));
            let id = page.add_tagged_annotation(annotation);
            if let Some(slot) = ids.get_mut(link.leaf) {
                *slot = Some(id);
            }
        }
        page.finish();
    }

    let mut outline = Outline::new();
    let mut current: Option<OutlineNode> = None;
    for (level, text, page, y) in &layout.outline {
        let node =
            OutlineNode::new(text.clone(), XyzDestination::new(*page, Point::from_xy(MARGIN, (*y - 20.0).max(0.0))));
        match (level, current.as_mut()) {
            (1 | 2, _) => {
                if let Some(done) = current.take() {
                    outline.push_child(done);
                }
                current = Some(node);
            }
            (_, Some(parent)) => parent.push_child(node),
            (_, None) => outline.push_child(node),
        }
    }
    if let Some(done) = current.take() {
        outline.push_child(done);
    }
    document.set_outline(outline);
    document.set_tag_tree(layout.tree.build(&mut ids, lang));
    document.finish()
}

fn rule(surface: &mut Surface<'_>, y: f32) {
    surface.start_tagged(ContentTag::Artifact(Artifact::with_kind(ArtifactType::Layout)));
    surface.set_fill(Some(fill(RULE)));
    if let Some(rect) = Rect::from_xywh(MARGIN, y, CONTENT_W, 0.5) {
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        if let Some(path) = path.finish() {
            surface.draw_path(&path);
        }
    }
    surface.end_tagged();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use super::*;
    use crate::reports::IssueLink;
    use crate::reports::tests::retrospective;

    fn text(pdf: &[u8]) -> String {
        String::from_utf8_lossy(pdf).into_owned()
    }

    /// A text string as krilla writes a non-ASCII one: UTF-16BE with a BOM, in hex.
    fn utf16(s: &str) -> String {
        let mut hex = String::from("FEFF");
        for unit in s.encode_utf16() {
            hex.push_str(&format!("{unit:04X}"));
        }
        hex
    }

    /// Every Flate stream of the file, inflated (content streams among them).
    fn streams(pdf: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = pdf;
        while let Some(start) = find(rest, b"stream\n") {
            let body = &rest[start + 7..];
            let Some(end) = find(body, b"endstream") else { break };
            let mut inflated = Vec::new();
            if flate2::read::ZlibDecoder::new(&body[..end]).read_to_end(&mut inflated).is_ok() {
                out.push(String::from_utf8_lossy(&inflated).into_owned());
            }
            rest = &body[end + b"endstream".len()..];
        }
        out
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    /// The filled paths of a content stream: (colour, width, height) of each, from the
    /// `q … /c0 cs r g b scn x y m x y l … h f … Q` blocks krilla writes.
    fn fills(content: &str) -> Vec<(Rgb, f32, f32)> {
        let mut out = Vec::new();
        for block in content.split("\nQ") {
            let Some((before, path)) = block.rsplit_once(" scn") else { continue };
            if !path.trim_end().ends_with("h\nf") {
                continue;
            }
            let rgb: Vec<f32> = before.split_whitespace().rev().take(3).filter_map(|v| v.parse().ok()).collect();
            let [b, g, r] = rgb[..] else { continue };
            let color = Rgb((r * 255.0).round() as u8, (g * 255.0).round() as u8, (b * 255.0).round() as u8);
            let numbers: Vec<f32> = path.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            let xs: Vec<f32> = numbers.iter().step_by(2).copied().collect();
            let ys: Vec<f32> = numbers.iter().skip(1).step_by(2).copied().collect();
            let span =
                |v: &[f32]| v.iter().copied().fold(f32::MIN, f32::max) - v.iter().copied().fold(f32::MAX, f32::min);
            out.push((color, span(&xs), span(&ys)));
        }
        out
    }

    fn health(dimensions: serde_json::Value) -> Report {
        serde_json::from_value(serde_json::json!({
            "kind": "health_check", "report_id": "h-2", "title": "Q4 health check", "team": "Platform",
            "date": "2026-11-21", "link": "https://app.example.test/health/h-2", "dimensions": dimensions,
        }))
        .unwrap()
    }

    #[test]
    fn a_retrospective_renders_to_a_pdf_over_several_pages() {
        let items: Vec<String> = (0..120).map(|i| format!("Item number {i} about Ελληνικά и кириллица")).collect();
        let pdf =
            render(&retrospective(&items.iter().map(String::as_str).collect::<Vec<_>>()), &Rendering::plain()).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
        let text = text(&pdf);
        assert!(text.trim_end().ends_with("%%EOF"));
        let count: usize = text
            .split("/Count ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(count >= 3, "{count} pages");
        // The font is embedded (subset), not referenced.
        assert!(text.contains("FontFile2") || text.contains("FontFile3"));
    }

    #[test]
    fn a_health_check_draws_one_bar_per_dimension_coloured_by_band_with_its_numbers_in_the_alt_text() {
        let report = health(serde_json::json!([
            {"name": "Speed", "score": 7.5, "trend": "up", "previous_score": 6.0, "comments": ["Faster builds"]},
            {"name": "Fun", "score": 4.0, "trend": "down"},
            {"name": "Support", "score": 2.5, "trend": "flat", "previous_score": 3.0},
        ]));
        let pdf = render(&report, &Rendering::plain()).unwrap();
        let text = text(&pdf);
        assert_eq!(text.matches("/S/Figure").count(), 3);
        for alt in [
            "Speed: 7.5 / 10 · Good · ↑ up · previous 6.0",
            "Fun: 4.0 / 10 · Fair · ↓ down",
            "Support: 2.5 / 10 · Needs attention · → flat · previous 3.0",
        ] {
            assert!(text.contains(&format!("/Alt<{}>", utf16(alt))), "{alt}");
        }
        let content = streams(&pdf).concat();
        let bars: Vec<(Rgb, f32)> = fills(&content)
            .into_iter()
            .filter(|(c, _, h)| [GREEN, AMBER, RED, TRACK].contains(c) && (*h - BAR_H).abs() < 0.01)
            .map(|(c, w, _)| (c, w))
            .collect();
        assert_eq!(
            bars,
            [
                (TRACK, BAR_W),
                (GREEN, BAR_W * 0.75),
                (TRACK, BAR_W),
                (AMBER, BAR_W * 0.4),
                (TRACK, BAR_W),
                (RED, BAR_W * 0.25)
            ]
        );
        let markers = fills(&content).into_iter().filter(|(c, _, _)| *c == MARKER).count();
        assert_eq!(markers, 2, "one marker per previous score");
    }

    #[test]
    fn links_to_the_app_and_to_created_issues_are_annotations_in_the_tag_tree() {
        let mut issues = BTreeMap::new();
        issues.insert(
            "a-1".to_owned(),
            IssueLink { key: "AGF-7".into(), url: "https://jira.example.test/browse/AGF-7".into() },
        );
        let rendering = Rendering { issues: &issues, ..Rendering::plain() };
        let pdf = text(&render(&retrospective(&["a", "b"]), &rendering).unwrap());
        assert!(pdf.contains("/URI(https://app.example.test/retros/r-1)"));
        assert!(pdf.contains("/URI(https://jira.example.test/browse/AGF-7)"));
        assert_eq!(pdf.matches("/Subtype/Link").count(), 2);
        // Each annotation is a child of a Link element (PDF/UA 7.18.5).
        assert_eq!(pdf.matches("/Type/OBJR").count(), 2);
        assert_eq!(pdf.matches("/S/Link").count(), 2);
        // Without the issue there is one link only.
        let pdf = text(&render(&retrospective(&["a", "b"]), &Rendering::plain()).unwrap());
        assert_eq!(pdf.matches("/Subtype/Link").count(), 1);
    }

    #[test]
    fn metadata_says_title_team_language_and_creator_and_the_file_validates_as_pdf_a_2b_and_pdf_ua_1() {
        let rendering = Rendering { locale: Locale::De, ..Rendering::plain() };
        let pdf = text(&render(&retrospective(&["a"]), &rendering).unwrap());
        assert!(pdf.contains("/Title(Sprint 42 retro)"));
        assert!(pdf.contains("/Author(Platform)"));
        assert!(pdf.contains("/Creator(Atlassian Bridge)"));
        assert!(pdf.contains("/Lang(de)"));
        assert!(pdf.contains("<pdfaid:part>2</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(pdf.contains("<pdfuaid:part>1</pdfuaid:part>"));
        // The same report renders to the same bytes (the creation date is the report's).
        let again = text(&render(&retrospective(&["a"]), &rendering).unwrap());
        assert_eq!(pdf, again);
    }

    #[test]
    fn the_pdf_is_tagged_with_headings_lists_a_table_and_an_outline() {
        let pdf = text(&render(&retrospective(&["a", "b", "c", "d"]), &Rendering::plain()).unwrap());
        assert!(pdf.contains("/StructTreeRoot") && pdf.contains("/MarkInfo<</Marked true"));
        for tag in ["/S/H1", "/S/H2", "/S/L", "/S/LI", "/S/Lbl", "/S/LBody", "/S/Table", "/S/THead", "/S/TH", "/S/TD"] {
            assert!(pdf.contains(tag), "{tag}");
        }
        assert!(pdf.contains("/Type/Outlines"));
        // Headings carry their text as a title (PDF/UA 7.4).
        assert!(pdf.contains("/T(Went well)"));
    }

    #[test]
    fn nothing_panics_on_the_largest_and_emptiest_valid_reports() {
        let long_words = "lorem ipsum dolor ".repeat(277);
        let one_word = "x".repeat(5_000);
        let mut items: Vec<serde_json::Value> =
            (0..1_990).map(|i| serde_json::json!({"text": format!("item {i}"), "votes": i % 7})).collect();
        items.extend(
            [&long_words, &one_word]
                .iter()
                .map(|t| serde_json::json!({"text": t, "votes": 9, "author": t, "group": "g"})),
        );
        let report: Report = serde_json::from_value(serde_json::json!({
            "kind": "retrospective", "report_id": "r-9", "title": "x".repeat(255), "team": "T", "date": "2026-11-20",
            "link": "https://app.example.test/r/9",
            "sections": [{"title": "Votes", "items": items}, {"title": "No votes", "items": [{"text": "zero"}]}],
            "action_items": [{"id": "a-1", "title": long_words}, {"id": "a-2", "title": one_word, "assignee_email": "x".repeat(200)}],
        }))
        .unwrap();
        report.validate().unwrap();
        let pdf = render(&report, &Rendering::plain()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));

        let dims: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                let (score, previous) = ([0.0, 10.0, 3.999, 7.0][i % 4], [10.0, 0.0][i % 2]);
                serde_json::json!({"name": format!("D{i}"), "score": score, "trend": "flat",
                                   "previous_score": previous, "comments": [long_words]})
            })
            .collect();
        let report = health(serde_json::Value::Array(dims));
        report.validate().unwrap();
        assert!(render(&report, &Rendering::plain()).unwrap().starts_with(b"%PDF-"));
    }

    #[test]
    fn text_no_font_draws_still_renders() {
        let pdf = render(&retrospective(&["🎉 日本語 ไทย"]), &Rendering::plain()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
