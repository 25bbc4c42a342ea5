//! The example config's placeholders, recognised so that a config nobody
//! edited never sends a request: a server entry uncommented with its
//! example token or address is refused with a message naming the key,
//! before any request, rather than sending a token to whatever answers at
//! an address on the user's LAN.

use std::net::{IpAddr, Ipv4Addr};

/// The example's Spotify Client ID.
const EXAMPLE_CLIENT_ID: &str = "0123456789abcdef0123456789abcdef";

/// Whether a secret (a token, an API key, a client secret, the admin token)
/// is still a placeholder: the example's are all "your-…" or "change-me…",
/// which no server issues.
pub fn is_placeholder_secret(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower.starts_with("your-") || lower.starts_with("change-me")
}

pub fn is_placeholder_client_id(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case(EXAMPLE_CLIENT_ID)
}

/// Whether a URL's host is reserved for documentation and examples, as the
/// example's addresses are: 192.0.2.0/24, 198.51.100.0/24 and
/// 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849), and the names
/// `example`, `*.example` and `example.com`/`.net`/`.org` with their
/// subdomains (RFC 2606). No real server answers there.
pub fn is_documentation_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => is_documentation_v4(ip),
        Ok(IpAddr::V6(ip)) => matches!(ip.segments(), [0x2001, 0x0db8, ..]),
        Err(_) => {
            let last_two: Vec<&str> = host.rsplit('.').take(2).collect();
            matches!(last_two.as_slice(), ["example", ..] | ["com" | "net" | "org", "example"])
        }
    }
}

fn is_documentation_v4(ip: Ipv4Addr) -> bool {
    matches!(ip.octets(), [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_hosts_are_recognised_and_real_ones_are_not() {
        for host in [
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.200",
            "[2001:db8::1]",
            "plex.example",
            "example.com",
            "nas.example.org.",
        ] {
            assert!(is_documentation_host(host), "{host}");
        }
        for host in [
            "192.168.1.10",
            "10.0.0.2",
            "192.0.3.1",
            "[2001:db9::1]",
            "plex.local",
            "myexample.com",
            "example.com.au",
            "nas",
        ] {
            assert!(!is_documentation_host(host), "{host}");
        }
    }

    #[test]
    fn placeholder_secrets_are_the_examples_kind_only() {
        for value in ["your-plex-token", "Your-Jellyfin-API-key", "change-me-to-a-long-random-string"] {
            assert!(is_placeholder_secret(value), "{value}");
        }
        for value in ["xQ3abc-your-token", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "changeme"] {
            assert!(!is_placeholder_secret(value), "{value}");
        }
        assert!(is_placeholder_client_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_placeholder_client_id("1123456789abcdef0123456789abcdef"));
    }
}
