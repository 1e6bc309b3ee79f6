//! `make bench`'s report measurement: renders a 1,000-item retrospective in Latin script (ten
//! sections of long items, and action items) to the Confluence storage body and the PDF summary,
//! several times, and prints one JSON line: sizes, the median wall time of each renderer, and
//! the CPU time of one page + PDF render (this thread's, from `/proc/thread-self/schedstat`).
//!
//!     cargo run --release -p bridge-shared --example render_report

use std::time::Instant;

use bridge::reports::{Rendering, Report, pdf, storage};
use serde_json::json;

const ROUNDS: usize = 9;

fn report() -> Report {
    let sentence = "The release train slipped because the integration environment was shared by three teams, \
                    and nobody owned the schedule; we agreed to publish a calendar and to rotate ownership weekly.";
    let sections: Vec<_> = (0..10)
        .map(|s| {
            let items: Vec<_> = (0..95)
                .map(|i| json!({"text": format!("{sentence} (section {s}, item {i})"), "votes": (i * 7 + s) % 13, "author": "Ben"}))
                .collect();
            json!({"title": format!("Section {s}: what we saw"), "items": items})
        })
        .collect();
    let action_items: Vec<_> = (0..50)
        .map(|i| json!({"id": format!("a-{i}"), "title": format!("Follow up on item {i}: {sentence}"), "due_date": "2026-12-31"}))
        .collect();
    serde_json::from_value(json!({
        "kind": "retrospective", "report_id": "bench-1000", "title": "Sprint 42 retrospective",
        "team": "Platform", "date": "2026-11-20", "facilitator": "Ana", "participants": ["Ana", "Ben", "Chloé"],
        "link": "https://app.example.test/retros/42", "sections": sections, "action_items": action_items,
    }))
    .expect("a valid report")
}

/// This thread's CPU time so far, in ns (the first field of schedstat).
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let report = report();
    report.validate().expect("within the API's limits");
    let (mut page_ms, mut pdf_ms, mut cpu_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut page_bytes, mut pdf_bytes) = (0, 0);
    for _ in 0..ROUNDS {
        let cpu = cpu_ns();
        let started = Instant::now();
        let page =
            storage::render(&report, "bridge-bench", &Rendering::plain()).expect("under Confluence's body limit");
        page_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let summary = pdf::render(&report, &Rendering::plain()).expect("a PDF");
        pdf_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if let (Some(before), Some(after)) = (cpu, cpu_ns()) {
            cpu_ms.push((after - before) as f64 / 1e6);
        }
        (page_bytes, pdf_bytes) = (page.len(), summary.len());
    }
    let items = 10 * 95 + 50;
    println!(
        "{}",
        json!({
            "items": items, "page_bytes": page_bytes, "pdf_bytes": pdf_bytes,
            "page_ms": median(page_ms), "pdf_ms": median(pdf_ms),
            "cpu_ms": if cpu_ms.is_empty() { serde_json::Value::Null } else { json!(median(cpu_ms)) },
        })
    );
}
