//! The Connect JWT verifier and the query string hash on any bytes: never panic; a token verifies
//! under one secret only, only for the installation it names, and only for a request of the same
//! canonical form. The input is `token \n method \n url \n base` (missing lines are empty).
#![no_main]

use bridge::ExposeSecret;
use bridge::connect::jwt::{ClientKey, Expected, QshRule, SharedSecret, peek_issuer, sign, verify};
use bridge::connect::qsh::Request;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let (token, method, url, base) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let secret = SharedSecret::from("fuzz-shared-secret".to_owned());
    let other_secret = SharedSecret::from("another-shared-secret".to_owned());
    let request = Request::from_url(method, url);
    let canonical = request.canonical(base);
    assert!(canonical.starts_with(&format!("{}&", method.to_ascii_uppercase())));
    assert_eq!(request.qsh(base).len(), 64);

    // Whatever token came in: decided without panicking, and never under two secrets.
    let issuer = peek_issuer(token).unwrap_or_else(|_| ClientKey::new("fuzz-client"));
    for rule in [QshRule::Request, QshRule::RequestOrContext] {
        let expected = Expected { issuer: &issuer, request: &request, base_url: base, qsh: rule };
        if verify(token, &secret, &expected, NOW).is_ok() {
            assert!(verify(token, &other_secret, &expected, NOW).is_err(), "verified under two secrets");
        }
    }

    // A token we sign for this request verifies for it, and not for another installation.
    let header = sign("fuzz-client", &secret, &request, base, NOW);
    let signed = header.expose_secret().trim_start_matches("JWT ");
    let client = ClientKey::new("fuzz-client");
    let expected = Expected { issuer: &client, request: &request, base_url: base, qsh: QshRule::Request };
    assert!(verify(signed, &secret, &expected, NOW).is_ok(), "our own token refused");
    let stranger = ClientKey::new("another-client");
    let elsewhere = Expected { issuer: &stranger, ..expected };
    assert!(verify(signed, &secret, &elsewhere, NOW).is_err(), "accepted for another installation");
});
