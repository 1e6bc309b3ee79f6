//! The egress guard for every request to a customer-supplied URL (and, since it is one client,
//! to every Atlassian URL): https only unless the operator allows http; no credentials in URLs;
//! names resolved and every address checked against loopback, private, link-local, CGNAT,
//! multicast, unspecified, documentation and cloud-metadata ranges (IPv4 and IPv6, IPv4-mapped
//! included). The connection is made to the checked address, because the check runs inside the
//! client's DNS resolver: there is no second lookup an attacker's DNS could answer differently.
//! Redirects are never followed (see the transport).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Operator setting for Server/DC hosts without TLS. Off by default.
    pub allow_http: bool,
    /// Test-only: lets the local test stack reach servers on 127.0.0.1. Off by default; never
    /// set it in a deployment.
    pub allow_loopback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("the URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("only https URLs are allowed (got {0}:)")]
    Scheme(String),
    #[error("URLs must not carry a user name or password")]
    Userinfo,
    #[error("{host} is not a public address ({addr}); only publicly reachable servers are allowed")]
    Private { host: String, addr: IpAddr },
    #[error("{0} does not resolve to any address")]
    Unresolvable(String),
}

impl EgressPolicy {
    /// Checks what can be checked without DNS: scheme, userinfo, and literal IP hosts (the WHATWG
    /// parser has already turned decimal, octal and hex IPv4 forms into dotted quads).
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http || self.allow_loopback_host(url) => {}
            other => return Err(EgressError::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Userinfo);
        }
        match url.host() {
            None => Err(EgressError::InvalidUrl("it has no host".into())),
            Some(Host::Ipv4(v4)) => self.check_ip(&v4.to_string(), IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check_ip(&v6.to_string(), IpAddr::V6(v6)),
            Some(Host::Domain(_)) => Ok(()),
        }
    }

    /// Parses and checks a customer-supplied URL string.
    pub fn parse(&self, value: &str) -> Result<Url, EgressError> {
        let url = Url::parse(value.trim()).map_err(|e| EgressError::InvalidUrl(e.to_string()))?;
        self.check_url(&url)?;
        Ok(url)
    }

    pub fn check_ip(&self, host: &str, addr: IpAddr) -> Result<(), EgressError> {
        if is_public(addr) || (self.allow_loopback && canonical(addr).is_loopback()) {
            Ok(())
        } else {
            Err(EgressError::Private { host: host.to_owned(), addr })
        }
    }

    /// With the test-only loopback allowance, the local simulator speaks plain http.
    fn allow_loopback_host(&self, url: &Url) -> bool {
        self.allow_loopback
            && match url.host() {
                Some(Host::Ipv4(v4)) => v4.is_loopback(),
                Some(Host::Ipv6(v6)) => v6.is_loopback(),
                Some(Host::Domain(d)) => d == "localhost",
                None => false,
            }
    }
}

/// An IPv4-mapped or NAT64 IPv6 address is judged by the IPv4 address inside it.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96 (NAT64) embeds an IPv4 address in the last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Whether an address is publicly routable (and not a cloud metadata endpoint).
pub fn is_public(addr: IpAddr) -> bool {
    match canonical(addr) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this" network, 0.0.0.0
        || a == 10                             // private
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64/10
        || a == 127                            // loopback
        || (a == 169 && b == 254)              // link-local, incl. 169.254.169.254 metadata
        || (a == 172 && (16..=31).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..=19).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)    // TEST-NET-3
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00          // unique local fc00::/7 (incl. AWS metadata fd00:ec2::254)
        || (s[0] & 0xffc0) == 0xfe80          // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0          // deprecated site-local fec0::/10
        || (s[0] & 0xff00) == 0xff00          // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x2002) // 6to4: embeds an IPv4 address we would not otherwise check
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32: tunnels to an (obfuscated) IPv4 address
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48 (RFC 8215)
        || s[..6] == [0, 0, 0, 0, 0xffff, 0] // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765 SIIT)
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d (deprecated)
}

/// Resolves names and refuses the answer unless every address is allowed, so the address the
/// client connects to is always one that was checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: EgressPolicy,
}

impl GuardedResolver {
    pub fn new(policy: EgressPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(EgressError::Unresolvable(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            // One bad address refuses the name: otherwise a DNS answer mixing a public and a
            // private address could still steer the connection inside.
            for addr in &addrs {
                policy
                    .check_ip(&host, addr.ip())
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        EgressPolicy::default().parse(url).is_err()
    }

    #[test]
    fn hostile_urls_are_refused_before_any_lookup() {
        let hostile = [
            "https://127.0.0.1/",
            "https://127.1.2.3/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::]/",
            "https://10.0.0.1/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "https://[2001::1]/",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://[64:ff9b:1:ffff::808:808]/",
            "https://[::ffff:0:7f00:1]/",
            "https://[::ffff:0:808:808]/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://0x7f.0.0.1/",
            "https://017700000001/",
            "https://127.1/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://x.atlassian.net@127.0.0.1/",
            "https://user:pass@jira.example.com/",
            "http://jira.example.com/",
            "file:///etc/passwd",
            "ftp://jira.example.com/",
            "gopher://127.0.0.1:6379/_INFO",
            "javascript:alert(1)",
            "not a url",
        ];
        for url in hostile {
            assert!(refused(url), "{url} was allowed");
        }
    }

    #[test]
    fn public_https_urls_pass_with_context_paths() {
        let policy = EgressPolicy::default();
        for url in [
            "https://jira.example.com/jira",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/confluence",
            "https://[2001:4860:4860::8888]/",
        ] {
            assert!(policy.parse(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn http_needs_the_operator_setting() {
        let policy = EgressPolicy { allow_http: true, ..Default::default() };
        assert!(policy.parse("http://jira.example.com/").is_ok());
        assert!(policy.parse("http://10.0.0.1/").is_err());
    }

    #[test]
    fn the_default_refuses_loopback_and_the_test_setting_allows_only_loopback() {
        assert!(refused("http://127.0.0.1:8080/"));
        let tests = EgressPolicy { allow_loopback: true, ..Default::default() };
        assert!(tests.parse("http://127.0.0.1:8080/dc/jira").is_ok());
        assert!(tests.parse("http://10.0.0.1/").is_err());
        assert!(tests.parse("http://169.254.169.254/").is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let resolver = GuardedResolver::new(EgressPolicy::default());
        let err = resolver.resolve("localhost".parse::<Name>().unwrap()).await.err().expect("refused");
        assert!(err.to_string().contains("not a public address"), "{err}");
        let tests = GuardedResolver::new(EgressPolicy { allow_loopback: true, ..Default::default() });
        assert!(tests.resolve("localhost".parse::<Name>().unwrap()).await.is_ok());
    }
}
