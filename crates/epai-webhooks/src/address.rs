//! Where webhooks may point (server-side request forgery): `https` only, except to hosts the
//! operator lists for local development; no credentials in the URL; and never an address that
//! is loopback, private, link-local (cloud metadata services live there), CGNAT, multicast,
//! reserved or otherwise not a public unicast address, unless the operator allows private
//! targets (`EPAI_WEBHOOK_ALLOW_PRIVATE=true`).
//!
//! Addresses are checked when a webhook is created or changed, and again at every connection,
//! on the addresses the connection actually uses ([`GuardedResolver`]), so a host name that
//! resolves elsewhere later (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// The longest URL a webhook may have.
pub const MAX_URL_LENGTH: usize = 2048;
/// How long a host name may take to resolve when a webhook is created.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a URL is not a webhook target. The messages never quote the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("url must be an absolute http(s) URL of at most 2048 characters")]
    Malformed,
    #[error("url must use https")]
    NotHttps,
    #[error("url must not contain a user name or password")]
    Credentials,
    #[error("url's host could not be resolved")]
    Unresolvable,
    #[error(
        "url points to a loopback, private, link-local or otherwise non-public address, which webhooks may not reach"
    )]
    NonPublicAddress,
}

/// The operator's rules for webhook targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow loopback, private and other non-public addresses (local development, private
    /// networks the operator trusts).
    pub allow_private: bool,
    /// Hosts (names or addresses, lower case) that may be reached over plain `http`.
    pub http_hosts: Vec<String>,
}

impl UrlPolicy {
    /// `raw` as a URL a webhook may have, before looking at the addresses it resolves to.
    pub fn parse(&self, raw: &str) -> Result<Url, UrlRefusal> {
        if raw.len() > MAX_URL_LENGTH || raw.trim() != raw {
            return Err(UrlRefusal::Malformed);
        }
        let url = Url::parse(raw).map_err(|_| UrlRefusal::Malformed)?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(UrlRefusal::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allows_plain_http(host) => {}
            "http" => return Err(UrlRefusal::NotHttps),
            _ => return Err(UrlRefusal::Malformed),
        }
        if url.fragment().is_some() {
            return Err(UrlRefusal::Malformed);
        }
        Ok(url)
    }

    fn allows_plain_http(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.http_hosts.iter().any(|allowed| {
            allowed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host)
        })
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }

    /// `raw` as a webhook target: a valid URL whose host resolves only to allowed addresses.
    pub async fn vet(&self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = self.parse(raw)?;
        let addresses = self.resolve(&url).await?;
        if addresses.iter().all(|a| self.allows(a.ip())) {
            Ok(url)
        } else {
            Err(UrlRefusal::NonPublicAddress)
        }
    }

    /// The addresses `url`'s host stands for (an address literal stands for itself).
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, UrlRefusal> {
        let port = url.port_or_known_default().ok_or(UrlRefusal::Malformed)?;
        if let Some(ip) = literal_address(url) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let host = url.host_str().ok_or(UrlRefusal::Malformed)?;
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| UrlRefusal::Unresolvable)?
            .map_err(|_| UrlRefusal::Unresolvable)?
            .collect::<Vec<_>>();
        if found.is_empty() {
            Err(UrlRefusal::Unresolvable)
        } else {
            Ok(found)
        }
    }
}

/// The address in `url`'s host when it is one (connections to it do not resolve anything).
pub fn literal_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Whether `ip` is a public unicast address: not unspecified, loopback, private, shared
/// (CGNAT), link-local, multicast, broadcast, documentation, benchmarking or reserved, also when
/// it hides inside an IPv6 address (IPv4-mapped, NAT64, 6to4, Teredo).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_public = a == 0                                  // "this network"
        || a == 10                                           // private
        || a == 127                                          // loopback
        || (a == 100 && (64..=127).contains(&b))             // shared address space (CGNAT)
        || (a == 169 && b == 254)                            // link-local, cloud metadata
        || (a == 172 && (16..=31).contains(&b))              // private
        || (a == 192 && b == 0 && c == 0)                    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                    // documentation
        || (a == 192 && b == 88 && c == 99)                  // 6to4 relay anycast
        || (a == 192 && b == 168)                            // private
        || (a == 198 && (18..=19).contains(&b))              // benchmarking
        || (a == 198 && b == 51 && c == 100)                 // documentation
        || (a == 203 && b == 0 && c == 113)                  // documentation
        || a >= 224; // multicast, reserved, broadcast
    !non_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: usize| {
        let [a, b] = segments[high].to_be_bytes();
        let [c, d] = segments[high + 1].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    match segments {
        // Unspecified, loopback, and the deprecated IPv4-compatible addresses.
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 (well-known and local-use prefixes): the IPv4 address it translates to.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_public_v4(embedded_v4(6)),
        [0x64, 0xff9b, 1, ..] => false,
        // Discard-only.
        [0x100, 0, 0, 0, ..] => false,
        // Teredo: the client's address is the last 32 bits, inverted.
        [0x2001, 0, ..] => {
            let v4 = embedded_v4(6);
            is_public_v4(Ipv4Addr::from(!u32::from(v4)))
        }
        // Documentation.
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..] => false,
        // 6to4: the IPv4 address in bits 16..48.
        [0x2002, ..] => is_public_v4(embedded_v4(1)),
        // Unique local (fc00::/7, incl. fd00:ec2::254), link-local and site-local, multicast.
        [first, ..] if first & 0xfe00 == 0xfc00 => false,
        [first, ..] if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 => false,
        [first, ..] if first & 0xff00 == 0xff00 => false,
        // Only 2000::/3 is allocated for global unicast.
        [first, ..] => first & 0xe000 == 0x2000,
    }
}

/// The error a refused connection reports, found again in the error chain to tell a refusal
/// from an unreachable host.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to an address webhooks may not reach")]
pub struct AddressRefused;

/// reqwest's resolver for webhook requests: resolves like the system does, then refuses the
/// connection unless every address is allowed by the policy.
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<UrlPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if found.is_empty() {
                return Err("the host has no address".into());
            }
            if !found.iter().all(|a| policy.allows(a.ip())) {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.192",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(!is_public(ip(private)), "{private} counted as public");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            assert!(is_public(ip(public)), "{public} counted as non-public");
        }
    }

    #[test]
    fn urls_must_be_https_without_credentials_unless_a_host_is_allowed_plain_http() {
        let strict = UrlPolicy::default();
        assert!(strict.parse("https://hooks.example.com/epai?x=1").is_ok());
        assert_eq!(
            strict.parse("http://hooks.example.com/"),
            Err(UrlRefusal::NotHttps)
        );
        assert_eq!(
            strict.parse("https://user:pw@hooks.example.com/"),
            Err(UrlRefusal::Credentials)
        );
        for malformed in [
            "",
            "hooks.example.com/path",
            "ftp://hooks.example.com/",
            "https://",
            " https://hooks.example.com/",
            "https://hooks.example.com/#frag",
            "javascript:alert(1)",
            &format!("https://hooks.example.com/{}", "a".repeat(2048)),
        ] {
            assert_eq!(
                strict.parse(malformed),
                Err(UrlRefusal::Malformed),
                "{malformed}"
            );
        }
        let local = UrlPolicy {
            allow_private: true,
            http_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        };
        assert!(local.parse("http://localhost:3000/hook").is_ok());
        assert!(local.parse("http://127.0.0.1:3000/hook").is_ok());
        assert!(local.parse("http://[::1]:3000/hook").is_ok());
        assert_eq!(
            local.parse("http://example.com/"),
            Err(UrlRefusal::NotHttps)
        );
    }

    #[tokio::test]
    async fn non_public_targets_are_refused_unless_allowed() {
        let strict = UrlPolicy::default();
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/",
        ] {
            assert_eq!(
                strict.vet(url).await,
                Err(UrlRefusal::NonPublicAddress),
                "{url}"
            );
        }
        assert!(strict.vet("https://8.8.8.8/").await.is_ok());
        let open = UrlPolicy {
            allow_private: true,
            ..UrlPolicy::default()
        };
        assert!(open.vet("https://127.0.0.1:9/").await.is_ok());
        assert!(open.vet("https://localhost/").await.is_ok());
    }
}
