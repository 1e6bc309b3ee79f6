//! `make bench`'s report measurement: renders a 1,000-item retrospective in Latin script (ten
//! sections of long items, and action items) to the Confluence storage body and the PDF summary,
//! several times, and prints one JSON line: sizes, the median wall time of each renderer, and
//! the CPU time of one page + PDF render (this thread's, from `/proc/thread-self/schedstat`);
//! under `mixed`, the same for a 1,000-item retrospective whose items are in every script a team
//! writes (CJK, Arabic, Hebrew, Devanagari, Thai, emoji, Greek, Cyrillic, mixed right-to-left and
//! left-to-right), with `cjk_load_ms`: reading the CJK font, once, before the first round.
//!
//!     cargo run --release -p bridge-shared --example render_report
//!     cargo run --release -p bridge-shared --example render_report -- --pdf mixed.pdf   # also writes it

use std::time::Instant;

use bridge::reports::{FontBook, Rendering, Report, pdf, storage};
use serde_json::json;

const ROUNDS: usize = 9;

const SENTENCE: &str = "The release train slipped because the integration environment was shared by three teams, \
                        and nobody owned the schedule; we agreed to publish a calendar and to rotate ownership weekly.";

/// The same point in the scripts teams write (tests/integration/test_report_scripts.py has them
/// one per item), for the mixed-script report.
const SCRIPTS: [&str; 12] = [
    SENTENCE,
    "发布列车推迟了，因为集成环境由三个团队共用，没有人负责日程；我们同意发布日历并每周轮换负责人。",
    "發佈列車延遲了，因為整合環境由三個團隊共用，沒有人負責排程；我們同意公佈行事曆並每週輪換。",
    "統合環境を三つのチームで共有していて、誰も日程を管理していなかったので、リリースが遅れました。",
    "통합 환경을 세 팀이 함께 쓰고 일정 담당자가 없어서 릴리스가 늦어졌습니다. 달력을 공개하기로 했습니다.",
    "تأخر الإصدار لأن بيئة التكامل كانت مشتركة بين ثلاثة فرق ولم يكن أحد مسؤولاً عن الجدول (3 votes)",
    "השחרור התעכב כי סביבת האינטגרציה הייתה משותפת לשלושה צוותים ואף אחד לא היה אחראי ללוח הזמנים (1 votes)",
    "रिलीज़ में देरी हुई क्योंकि इंटीग्रेशन एनवायरनमेंट तीन टीमों में साझा था और शेड्यूल किसी के पास नहीं था।",
    "การเปิดตัวล่าช้าเพราะสภาพแวดล้อมการทดสอบใช้ร่วมกันสามทีม และไม่มีใครดูแลตารางเวลา",
    "Η κυκλοφορία καθυστέρησε επειδή το περιβάλλον ενοποίησης το μοιράζονταν τρεις ομάδες 🚀 👍🏽",
    "Релиз задержался, потому что среду интеграции делили три команды, и никто не отвечал за график 🎉",
    "Mixed: 日本 team, مرحبا بالجميع, שלום עולם, हिन्दी, ไทย ❤️ — we agreed to rotate ownership weekly.",
];

fn report(mixed: bool) -> Report {
    let text = |i: usize| if mixed { SCRIPTS[i % SCRIPTS.len()] } else { SENTENCE };
    let sections: Vec<_> = (0..10)
        .map(|s| {
            let items: Vec<_> = (0..95)
                .map(|i| {
                    json!({"text": format!("{} (section {s}, item {i})", text(i + s)), "votes": (i * 7 + s) % 13, "author": "Ben"})
                })
                .collect();
            json!({"title": format!("Section {s}: {}", if mixed { "what we saw — 我们看到的 — מה ראינו" } else { "what we saw" }), "items": items})
        })
        .collect();
    let action_items: Vec<_> = (0..50)
        .map(|i| json!({"id": format!("a-{i}"), "title": format!("Follow up on item {i}: {}", text(i)), "due_date": "2026-12-31"}))
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

struct Measured {
    page_ms: f64,
    pdf_ms: f64,
    cpu_ms: Option<f64>,
    page_bytes: usize,
    pdf_bytes: usize,
}

fn measure(report: &Report, rendering: &Rendering<'_>) -> Measured {
    report.validate().expect("within the API's limits");
    let (mut page_ms, mut pdf_ms, mut cpu_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut page_bytes, mut pdf_bytes) = (0, 0);
    for _ in 0..ROUNDS {
        let cpu = cpu_ns();
        let started = Instant::now();
        let page = storage::render(report, "bridge-bench", rendering).expect("under Confluence's body limit");
        page_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let summary = pdf::render(report, rendering).expect("a PDF");
        pdf_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if let (Some(before), Some(after)) = (cpu, cpu_ns()) {
            cpu_ms.push((after - before) as f64 / 1e6);
        }
        (page_bytes, pdf_bytes) = (page.len(), summary.len());
    }
    Measured {
        page_ms: median(page_ms),
        pdf_ms: median(pdf_ms),
        cpu_ms: (!cpu_ms.is_empty()).then(|| median(cpu_ms)),
        page_bytes,
        pdf_bytes,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pdf_out = args.iter().position(|a| a == "--pdf").and_then(|i| args.get(i + 1));
    let latin = measure(&report(false), &Rendering::plain());

    // A fresh book, as a new instance has: the CJK font is read on the first CJK text.
    let fonts = FontBook::new(bridge::reports::text::LOCAL_CJK_FONT);
    let started = Instant::now();
    assert!(fonts.load_cjk(), "the CJK font {} is missing: run `make fonts`", fonts.cjk_path().display());
    let cjk_load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let probe = pdf::render(&report(true), &Rendering { fonts: &fonts, ..Rendering::plain() }).expect("a PDF");
    let mixed = measure(&report(true), &Rendering { fonts: &fonts, ..Rendering::plain() });
    if let Some(path) = pdf_out {
        std::fs::write(path, &probe).expect("the PDF written");
    }
    let items = 10 * 95 + 50;
    println!(
        "{}",
        json!({
            "items": items, "page_bytes": latin.page_bytes, "pdf_bytes": latin.pdf_bytes,
            "page_ms": latin.page_ms, "pdf_ms": latin.pdf_ms, "cpu_ms": latin.cpu_ms,
            "mixed": {
                "page_bytes": mixed.page_bytes, "pdf_bytes": mixed.pdf_bytes, "page_ms": mixed.page_ms,
                "pdf_ms": mixed.pdf_ms, "cpu_ms": mixed.cpu_ms,
                // Reading the CJK font, once per instance, before the first report that needs it.
                "cjk_load_ms": cjk_load_ms, "budget_ms": 150,
            },
        })
    );
}
