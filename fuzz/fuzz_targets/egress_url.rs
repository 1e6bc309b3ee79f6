//! The egress guard's URL check on any string: never panics, and whatever it accepts is https,
//! carries no credentials, and — when its host is an IP literal — is a public address.
#![no_main]

use bridge::atlassian::{EgressPolicy, is_public};
use libfuzzer_sys::fuzz_target;
use url::Host;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let policy = EgressPolicy::default();
    if let Ok(url) = policy.parse(text) {
        assert_eq!(url.scheme(), "https", "{text:?}");
        assert!(url.username().is_empty() && url.password().is_none(), "{text:?}");
        match url.host() {
            Some(Host::Ipv4(v4)) => assert!(is_public(v4.into()), "{text:?} → {v4}"),
            Some(Host::Ipv6(v6)) => assert!(is_public(v6.into()), "{text:?} → {v6}"),
            Some(Host::Domain(_)) => {}
            None => panic!("accepted a URL without a host: {text:?}"),
        }
    }
});
