//! The Connect install-JWT verifier (RS256 lifecycle tokens, `bridge::connect::install`) on any
//! bytes: never panics; a token verifies only with the key its (safe) `kid` names, only for the
//! payload's clientKey, only for our audience and only for this request. The input is
//! `token \n client_key \n audience \n path` (missing lines are empty); the key is the test key
//! (`shared/tests/fixtures/rs256-test-key.pem`), published under kid `k1`.
#![no_main]

use bridge::connect::install::{Expected, InstallJwtError, valid_kid, verify_with};
use bridge::connect::jwt::ClientKey;
use bridge::connect::qsh::Request;
use bridge::rs256::RsaKey;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;
const PUBLIC_PEM: &str = include_str!("../../shared/tests/fixtures/rs256-test-key.pub.pem");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let (token, client, audience, path) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let key = RsaKey::from_pem(PUBLIC_PEM).expect("the test key");
    let client_key = ClientKey::new(client);
    let request = Request::new("POST", path, "");
    let expected = Expected { audience, client_key: &client_key, request: &request };
    let mut asked = None;
    let result = verify_with(
        token,
        |kid| {
            asked = Some(kid.to_owned());
            (kid == "k1").then(|| key.clone())
        },
        &expected,
        NOW,
    );
    if let Some(kid) = &asked {
        assert!(valid_kid(kid), "a key was looked up by an unsafe kid");
    }
    let Ok(verified) = result else { return };
    assert_eq!(verified.client_key(), &client_key);
    assert_eq!(verified.key_id(), "k1");
    assert!(!audience.trim_end_matches('/').is_empty());
    // Only this key, this clientKey, this audience, this request.
    assert_eq!(verify_with(token, |_| None, &expected, NOW), Err(InstallJwtError::UnknownKey));
    let stranger = ClientKey::new(format!("{client}-other"));
    assert!(verify_with(token, |_| Some(key.clone()), &Expected { client_key: &stranger, ..expected }, NOW).is_err());
    let elsewhere = format!("{audience}x");
    assert!(verify_with(token, |_| Some(key.clone()), &Expected { audience: &elsewhere, ..expected }, NOW).is_err());
    let other = Request::new("POST", &format!("{path}x"), "");
    assert!(verify_with(token, |_| Some(key.clone()), &Expected { request: &other, ..expected }, NOW).is_err());
});
