//! The Forge Invocation Token verifier, the JWKS parser and the app system token reader on any
//! bytes: never panic; a token verifies only as an RS256 FIT from Forge for our app, unexpired,
//! naming an installation, a product and its site. The input is `token \n system-token`.
#![no_main]

use bridge::forge::fit;
use bridge::forge::jwks;
use bridge::forge::tokens::{AppSystemToken, MAX_LIFETIME_SECONDS};
use bridge::rs256::RsaKey;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;
const APP: &str = "ari:cloud:ecosystem::app/0b8a7a2e-0000-4000-8000-000000000001";
/// The public half of shared/tests/fixtures/rs256-test-key.pem (the seed corpus's `valid` is
/// signed with it).
const N: &str = "wXO5-VvTOEc-PUYrBO51CjF1hUKNEK6Ox_6e6ZywycP0H_FUzqOxd5ubVTzR-ZZP1qit6F7vkNgj3ZiMYK-GBvNGsqqDjC-ViRzpuN8j_CoH0cG2GUlTShrXbMBhVnTyN43M_0raYKwrf1-Y1TSvxTSW3xqHsy_w7jazg19MycsdXjPvIyHf1AXodd206EHvaiYZg7vkTuTpp1VXhw2_rJ0RlM0TU-Bk37ubkr26ARhqQ-Z_kBafmvJwUve7TrGaBMjP1DoKwRK3_MgGXaFtfi6W5z00vTM8BJ1USUq8lLaaUyhTIuJUQ55fkDFhMb9S30pyCyyc47fhbBpwlJbIpQ";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (token, system) = text.split_once('\n').unwrap_or((&text, ""));
    let key = RsaKey::from_jwk(N, "AQAB").expect("the test key");

    let token = fit::bearer(Some(token)).unwrap_or(token);
    if let Ok(v) = fit::verify_with_key(token, &key, APP, NOW) {
        // Only what the checks allow comes out.
        assert_eq!(v.app_id(), APP);
        assert!(v.expires_at() + bridge::connect::jwt::LEEWAY_SECONDS >= NOW, "expired token accepted");
        assert!(!v.installation_id().is_empty() && !v.cloud_id().is_empty());
        assert!(v.api_base_url().contains(&format!("/ex/{}/{}", v.product(), v.cloud_id())));
        // The same token for another app is refused.
        assert!(fit::verify_with_key(token, &key, "ari:cloud:ecosystem::app/other", NOW).is_err());
        // And past its life.
        assert!(fit::verify_with_key(token, &key, APP, v.expires_at() + 31).is_err());
    }

    // A JWKS built from the bytes: parsed without panicking.
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
        let _ = jwks::parse(&doc);
    }

    // The app system token's expiry: read without panicking, never further than the cap.
    if let Ok(t) = AppSystemToken::from_header(system, NOW) {
        assert!(t.expires_at() <= NOW + MAX_LIFETIME_SECONDS);
    }
});
