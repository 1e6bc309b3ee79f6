//! Test-only helpers the library's unit tests share.

/// Files generated from the code and committed (the OpenAPI document, routes.json, the event
/// schemas) must equal what the code generates now; `BLESS=1` rewrites them (`make openapi`).
pub fn assert_committed(path: &str, generated: &str) {
    if std::env::var_os("BLESS").is_some() {
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(committed == generated, "{path} is stale: run `make openapi` and commit it");
}
