//! Who may use the status server. Every route answers only to a `Host` the
//! box is known by (the address the connection reached, a loopback address,
//! `localhost`, the machine's hostname, `[status] hostnames`), so a web page
//! whose name rebinds to this box's address gets nothing. Controls and the
//! export always need the admin token (`app::admin_token`); a request from
//! another site's page (`Origin`) is refused even with it.

use super::http::{Request, Response};
use crate::app::admin_token::{self, TokenError};
use crate::app::constant_time_eq;
use crate::config::Config;
use hyper::header;
use hyper::http::uri::{Authority, Uri};
use std::collections::BTreeSet;
use std::net::IpAddr;

pub struct Access {
    admin_token: String,
    /// Lowercase names without a trailing dot; addresses are matched
    /// against the connection's own address instead (and may be listed).
    names: BTreeSet<String>,
}

impl Access {
    /// The token the daemon enforces (the config's, or the one generated in
    /// the state directory) and the names the box answers to.
    pub fn from_config(config: &Config) -> Result<Access, TokenError> {
        let admin_token = admin_token::load_or_create(config)?;
        Ok(Access::new(admin_token, machine_hostname().as_deref(), &config.status.hostnames))
    }

    /// `localhost`, the machine's `hostname` (and `hostname.local`, its
    /// mDNS name) and the configured names.
    pub fn new(admin_token: String, hostname: Option<&str>, configured: &[String]) -> Access {
        let mut names: BTreeSet<String> = configured.iter().cloned().collect();
        names.insert("localhost".into());
        if let Some(hostname) = hostname.map(comparable).filter(|hostname| !hostname.is_empty()) {
            names.insert(format!("{hostname}.local"));
            names.insert(hostname);
        }
        Access { admin_token, names }
    }

    /// 400 without a usable `Host`, 421 when the box is not known by it.
    pub fn check_host(&self, request: &Request) -> Result<(), Response> {
        let Some(host) = request.header(header::HOST) else {
            return Err(Response::error(400, "send one Host header naming this box"));
        };
        let authority: Authority = host
            .parse()
            .ok()
            .filter(|authority: &Authority| !authority.as_str().contains('@'))
            .ok_or_else(|| Response::error(400, "the Host header is not a host name and port"))?;
        let name = comparable(authority.host());
        let address = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        // A browser sends an address as Host only for a page it loaded from
        // that address, never for a rebinding name: the one the connection
        // reached and loopback (tunnels) are this box.
        let ours = address
            .map(|address| address.to_canonical())
            .is_some_and(|address| address.is_loopback() || address == request.local.ip().to_canonical());
        if ours || self.names.contains(&name) {
            return Ok(());
        }
        Err(Response::error(
            421,
            &format!(
                "this box does not answer to the name \"{name}\" (a guard against DNS rebinding); open it by its address, localhost or its hostname, or add the name to [status] hostnames"
            ),
        ))
    }

    /// Controls and the export: the admin token as a Bearer token, from a
    /// page of this box if from a page at all.
    pub fn check_admin(&self, request: &Request) -> Result<(), Response> {
        if request.headers.contains_key(header::ORIGIN) && !same_origin(request) {
            return Err(Response::error(403, "requests from another site's page are refused"));
        }
        let given = request.header(header::AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer ")).unwrap_or("");
        if constant_time_eq(given.trim().as_bytes(), self.admin_token.as_bytes()) {
            return Ok(());
        }
        Err(Response::error(
            401,
            "this needs Authorization: Bearer <admin token>: [status] admin_token, or the generated one `sudo mediasync admin-token` prints",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"mediasync\""))
    }
}

/// The request's one `Origin` is this box as the browser addressed it.
fn same_origin(request: &Request) -> bool {
    let (Some(origin), Some(host)) = (request.header(header::ORIGIN), request.header(header::HOST)) else {
        return false;
    };
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let scheme_is_http = matches!(origin.scheme_str(), Some("http" | "https"));
    scheme_is_http && origin.authority().is_some_and(|authority| authority.as_str().eq_ignore_ascii_case(host))
}

/// How names are compared: lowercase, without the root's trailing dot.
fn comparable(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The kernel's hostname (also inside systemd's `ProtectHostname=`).
fn machine_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|text| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;
    use hyper::header::{HeaderMap, HeaderValue};
    use hyper::{Method, Uri};

    fn request(local: &str, headers: &[(&'static str, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        Request::new(Method::POST, &Uri::from_static("/"), map, local.parse().unwrap(), Bytes::new())
            .unwrap_or_else(|_| panic!("refused"))
    }

    fn access() -> Access {
        Access::new("the-admin-token".into(), Some("Pi"), &["media.example.net".into(), "203.0.113.7".into()])
    }

    fn host_status(local: &str, host: &str) -> u16 {
        access().check_host(&request(local, &[("host", host)])).err().map_or(200, |refused| refused.status)
    }

    #[test]
    fn the_box_answers_to_its_names_and_the_address_reached() {
        let lan = "192.168.1.5:8787";
        for host in
            ["192.168.1.5:8787", "localhost:9000", "LOCALHOST", "pi", "pi.local:8787", "Pi.Local.", "media.example.net"]
        {
            assert_eq!(host_status(lan, host), 200, "{host}");
        }
        assert_eq!(host_status("127.0.0.1:8787", "127.0.0.1:8787"), 200);
        assert_eq!(host_status(lan, "127.0.0.1:9000"), 200, "a tunnel to the LAN address");
        assert_eq!(host_status("[::1]:8787", "[::1]:8787"), 200);
        assert_eq!(host_status("[::ffff:192.168.1.5]:8787", "192.168.1.5:8787"), 200, "dual-stack listener");
        assert_eq!(host_status(lan, "203.0.113.7:8787"), 200, "a configured address (port forwarding)");
    }

    #[test]
    fn other_names_get_421_and_unusable_hosts_400() {
        let lan = "192.168.1.5:8787";
        for host in ["evil.example:8787", "192.168.1.6", "[fd00::6]", "pi.evil.example", "localhost.evil.example"] {
            assert_eq!(host_status(lan, host), 421, "{host}");
        }
        for host in ["", "a b", "user@pi", "pi/x"] {
            assert_eq!(host_status(lan, host), 400, "{host:?}");
        }
        let twice = request(lan, &[("host", "pi"), ("host", "pi")]);
        assert_eq!(access().check_host(&twice).err().map(|refused| refused.status), Some(400));
        let missing = request(lan, &[]);
        assert_eq!(access().check_host(&missing).err().map(|refused| refused.status), Some(400));
    }

    #[test]
    fn admin_needs_the_token_and_no_foreign_origin() {
        let admin = |headers: &[(&'static str, &str)]| {
            access().check_admin(&request("127.0.0.1:8787", headers)).err().map_or(200, |refused| refused.status)
        };
        let bearer = "Bearer the-admin-token";
        assert_eq!(admin(&[]), 401, "loopback alone grants nothing");
        assert_eq!(admin(&[("authorization", "Bearer the-admin-tokem")]), 401);
        assert_eq!(admin(&[("authorization", "the-admin-token")]), 401);
        assert_eq!(admin(&[("authorization", bearer)]), 200);
        assert_eq!(admin(&[("authorization", bearer), ("host", "pi:8787"), ("origin", "http://pi:8787")]), 200);
        for origin in ["http://evil.example", "null", "http://pi:9999", "file://pi:8787", "http://pi:8787.evil"] {
            assert_eq!(admin(&[("authorization", bearer), ("host", "pi:8787"), ("origin", origin)]), 403, "{origin}");
        }
        let two_origins =
            [("authorization", bearer), ("host", "pi:8787"), ("origin", "http://pi:8787"), ("origin", "http://evil")];
        assert_eq!(admin(&two_origins), 403);
    }
}
