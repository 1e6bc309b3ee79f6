//! Reads requests as JSON (`[{"method", "url", "base"}]`) on stdin and prints, for each, our
//! canonical request and query string hash (`[{"canonical", "qsh"}]`): tests/test_connect_qsh.py
//! compares them with Atlassian's reference implementation (npm `atlassian-jwt`, tests/connect/).

use std::io::Read;

use bridge::connect::qsh::Request;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    method: String,
    url: String,
    #[serde(default)]
    base: String,
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let cases: Vec<Case> = serde_json::from_str(&input).expect("a JSON array of {method, url, base}");
    let out: Vec<serde_json::Value> = cases
        .iter()
        .map(|case| {
            let request = Request::from_url(&case.method, &case.url);
            serde_json::json!({"canonical": request.canonical(&case.base), "qsh": request.qsh(&case.base)})
        })
        .collect();
    println!("{}", serde_json::Value::Array(out));
}
