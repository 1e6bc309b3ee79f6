//! The PDF renderer on any report that validates: never panics, returns Ok, and writes a PDF —
//! `%PDF-` header, `%%EOF` trailer, a cross-reference table and a catalog.
#![no_main]

#[path = "../common/report.rs"]
mod report;

use bridge::reports::{FontBook, Rendering, pdf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(built) = report::build(data) else { return };
    let rendering = Rendering {
        locale: built.locale,
        issues: &built.issues,
        pdf_filename: "report.pdf",
        flavour: built.flavour,
        jira_link: None,
        // The checkout's fonts: the CJK collection where `make fonts` puts it.
        fonts: FontBook::local(),
    };
    let bytes = pdf::render(&built.report, &rendering).unwrap_or_else(|e| panic!("no PDF: {e}"));
    assert!(bytes.starts_with(b"%PDF-1."), "no PDF header");
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    assert!(tail.windows(5).any(|w| w == b"%%EOF"), "no %%EOF trailer");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/Type /Catalog") || has(b"/Type/Catalog"), "no catalog");
    assert!(has(b"startxref"), "no cross-reference");
});
