//! One resized image per request, never the original: Plex's photo
//! transcoder, Jellyfin/Emby's image route with `maxWidth`, Spotify's listed
//! size (the marker is its CDN URL, asked with no credential: the token
//! never leaves the API host). Credentials go in headers only, so the URLs
//! logged and shown hold no secret. A re-check sends the validators the
//! server gave (`If-None-Match`, `If-Modified-Since`); a 304 reads no body.

use crate::config::{Backend, ServerConfig};
use crate::source::http::encode;
use crate::source::stop::Stop;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The most bytes read of one image: a resized poster is tens of KiB.
pub const MAX_IMAGE_BYTES: u64 = 8 << 20;

/// What a server sent to revalidate an image with.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// An image request's outcome.
pub enum Fetched {
    Image {
        bytes: Vec<u8>,
        validators: Validators,
    },
    NotModified,
    /// The server has no such image (404): nothing to mirror.
    Missing,
    /// Larger than `MAX_IMAGE_BYTES`: skipped, never written.
    TooLarge,
}

/// Why an image could not be had; the pass stops (and resumes next run)
/// on `Unavailable` and `RateLimited`.
#[derive(Debug)]
pub enum FetchError {
    Unavailable(String),
    RateLimited(String),
    Refused(String),
    Stopped,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unavailable(text) | FetchError::RateLimited(text) | FetchError::Refused(text) => {
                f.write_str(text)
            }
            FetchError::Stopped => f.write_str("stopped"),
        }
    }
}

/// A server's image client.
pub struct ImageClient {
    agent: ureq::Agent,
    base: String,
    /// The credential header (name, value); never logged.
    credential: Option<(&'static str, String)>,
    backend: ImageRoute,
    width: u32,
    stop: Arc<Stop>,
    requests: u64,
}

/// Which route resizes a server's images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageRoute {
    PlexTranscoder,
    JellyfinImages,
    /// The marker is the image's own `http(s)` URL on another host (a
    /// CDN): asked as it is, with no credential.
    Direct,
}

impl ImageClient {
    /// The image client of `server`.
    pub fn new(server: &ServerConfig, width: u32, timeout: Duration, stop: &Arc<Stop>) -> ImageClient {
        let (base, credential, backend) = match &server.backend {
            Backend::Plex(plex) => {
                (plex.url.clone(), Some(("X-Plex-Token", plex.token.clone())), ImageRoute::PlexTranscoder)
            }
            Backend::Jellyfin(jellyfin) => {
                let value = crate::source::jellyfin::authorization(&server.name, Some(&jellyfin.token));
                (jellyfin.url.clone(), Some(("Authorization", value)), ImageRoute::JellyfinImages)
            }
            Backend::Spotify(_) => (String::new(), None, ImageRoute::Direct),
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("mediasync/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent: ureq::Agent = config.into();
        stop.register(&agent);
        ImageClient {
            agent,
            base: base.trim_end_matches('/').to_string(),
            credential,
            backend,
            width,
            stop: Arc::clone(stop),
            requests: 0,
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The path and query asking for `thumb` resized to the width.
    pub fn path_for(&self, thumb: &str) -> String {
        let width = self.width;
        match self.backend {
            ImageRoute::PlexTranscoder => {
                format!("/photo/:/transcode?width={width}&height={width}&minSize=1&upscale=1&url={}", encode(thumb))
            }
            ImageRoute::JellyfinImages => {
                let separator = if thumb.contains('?') { '&' } else { '?' };
                format!("{thumb}{separator}maxWidth={width}")
            }
            ImageRoute::Direct => thumb.to_string(),
        }
    }

    /// GETs the resized image of `thumb`, conditionally when `known` holds
    /// validators.
    pub fn fetch(&mut self, thumb: &str, known: Option<&Validators>) -> Result<Fetched, FetchError> {
        let at = format!("{}{}", self.base, self.path_for(thumb));
        if self.stop.is_set() {
            return Err(FetchError::Stopped);
        }
        if self.backend == ImageRoute::Direct && !(at.starts_with("https://") || at.starts_with("http://")) {
            // Not a URL the source would keep: nothing to ask for.
            return Ok(Fetched::Missing);
        }
        self.requests = self.requests.saturating_add(1);
        let mut request = self.agent.get(&at).header("Accept", "image/*");
        if let Some((name, value)) = &self.credential {
            request = request.header(*name, value.as_str());
        }
        if let Some(etag) = known.and_then(|known| known.etag.as_deref()) {
            request = request.header("If-None-Match", etag);
        }
        if let Some(date) = known.and_then(|known| known.last_modified.as_deref()) {
            request = request.header("If-Modified-Since", date);
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(_) if self.stop.is_set() => return Err(FetchError::Stopped),
            Err(err) => return Err(FetchError::Unavailable(format!("{at}: {err}; will retry at the next sync"))),
        };
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
        match status {
            200 => {
                let validators = Validators { etag: header("etag"), last_modified: header("last-modified") };
                let mut bytes = Vec::new();
                let read =
                    response.into_body().into_reader().take(MAX_IMAGE_BYTES.saturating_add(1)).read_to_end(&mut bytes);
                match read {
                    Err(_) if self.stop.is_set() => Err(FetchError::Stopped),
                    Err(err) => {
                        Err(FetchError::Unavailable(format!("{at}: the image was cut off ({err}); will retry")))
                    }
                    Ok(_) if bytes.len() as u64 > MAX_IMAGE_BYTES => Ok(Fetched::TooLarge),
                    Ok(_) if bytes.is_empty() => {
                        Err(FetchError::Unavailable(format!("{at}: an empty image; will retry")))
                    }
                    Ok(_) if !super::files::looks_whole(&bytes) => Err(FetchError::Unavailable(format!(
                        "{at}: the image was cut off; will retry at the next sync"
                    ))),
                    Ok(_) => Ok(Fetched::Image { bytes, validators }),
                }
            }
            304 => Ok(Fetched::NotModified),
            404 => Ok(Fetched::Missing),
            // A CDN asks for no credential: a refusal is an expired or
            // withdrawn URL, skipped like a missing image (the next
            // listing may name another).
            401 | 403 | 410 if self.backend == ImageRoute::Direct => Ok(Fetched::Missing),
            429 => {
                Err(FetchError::RateLimited(format!("{at}: rate limited (HTTP 429); images resume at the next sync")))
            }
            401 | 403 => Err(FetchError::Refused(format!(
                "{at}: the server refused the credentials (HTTP {status}); check the server's token in the config"
            ))),
            _ => Err(FetchError::Unavailable(format!("{at}: HTTP {status}; will retry at the next sync"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ImageClient;
    use crate::source::stop::Stop;
    use std::sync::Arc;
    use std::time::Duration;

    fn server(text: &str) -> crate::config::ServerConfig {
        let config = format!("[store]\npath = \"/tmp/m.redb\"\n[[server]]\n{text}");
        crate::config::parse(&config, std::path::Path::new("t.toml")).unwrap().servers.remove(0)
    }

    #[test]
    fn resized_routes_carry_no_token() {
        let stop = Arc::new(Stop::new());
        let plex = server("name = \"p\"\nkind = \"plex\"\nurl = \"http://127.0.0.1:32400\"\ntoken = \"s3cr3t-token\"");
        let client = ImageClient::new(&plex, 300, Duration::from_secs(5), &stop);
        let path = client.path_for("/library/metadata/55/thumb/1579514152");
        assert_eq!(
            path,
            "/photo/:/transcode?width=300&height=300&minSize=1&upscale=1&url=%2Flibrary%2Fmetadata%2F55%2Fthumb%2F1579514152"
        );
        assert!(!path.contains("s3cr3t"));
    }

    #[test]
    fn spotify_images_are_asked_of_their_cdn_url_with_no_credential() {
        let stop = Arc::new(Stop::new());
        let spotify = server("name = \"s\"\nkind = \"spotify\"\nclient_id = \"abc\"");
        let client = ImageClient::new(&spotify, 300, Duration::from_secs(5), &stop);
        assert_eq!(
            client.path_for("https://i.scdn.co/image/ab67616d00001e02ff"),
            "https://i.scdn.co/image/ab67616d00001e02ff"
        );
        assert!(client.credential.is_none(), "the token would go to the CDN");
    }
}
