//! Parsers for the values a config holds as text: durations, URLs,
//! schedules, server names and secrets given inline or in a file. Each one
//! says what is wrong as a value (`UrlProblem`, `ScheduleProblem`, ...);
//! the caller adds which key held it.

use super::error::{Problem, ScheduleProblem, SecretProblem, UrlProblem};
use super::placeholders::is_documentation_host;
use std::path::PathBuf;
use std::time::Duration;

/// Parses "500ms", "90s", "15m", "12h", "7d" (one number, one unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        "d" => number.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// Parses a cron expression (cron crate syntax: seconds, minutes, hours, day
/// of month, month, day of week, optional year) that fires at least once.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, ScheduleProblem> {
    use std::str::FromStr;
    let schedule = cron::Schedule::from_str(text.trim()).map_err(ScheduleProblem::Unparsable)?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err(ScheduleProblem::NeverFires);
    }
    Ok(schedule)
}

/// Checks a server URL and returns it without a trailing slash. A host
/// reserved for documentation (the example config's) is refused.
pub fn parse_url(url: &str) -> Result<String, UrlProblem> {
    let uri: ureq::http::Uri = url.parse().map_err(UrlProblem::Unparsable)?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(UrlProblem::NotHttp),
    }
    let Some(authority) = uri.authority() else {
        return Err(UrlProblem::NoHost);
    };
    if authority.host().is_empty() {
        return Err(UrlProblem::NoHost);
    }
    if authority.as_str().contains('@') {
        return Err(UrlProblem::Credentials);
    }
    if is_documentation_host(authority.host()) {
        return Err(UrlProblem::Placeholder);
    }
    if uri.query().is_some() {
        return Err(UrlProblem::Query);
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A secret given inline as `key` or in the file `key_file` (one of them at
/// most), trimmed.
pub fn secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    key: &'static str,
) -> Result<Option<String>, SecretProblem> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(SecretProblem::Both { key }),
        (Some(value), None) => Ok(Some(value.trim().to_string())),
        (None, Some(file)) => match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(source) => Err(SecretProblem::Unreadable { key, file, source }),
        },
        (None, None) => Ok(None),
    }
}

/// Whether a secret can travel in a header as it is: not empty, no spaces
/// or control characters.
pub fn is_header_safe(secret: &str) -> bool {
    !secret.is_empty() && !secret.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A `[status] hostnames` entry: a host name or address as it appears in a
/// `Host` header, without port; kept lowercase and without a trailing dot
/// (how the status server compares it).
pub fn parse_hostname(text: &str) -> Result<String, Problem> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let refused = || Problem::Hostname(text.to_string());
    let authority: ureq::http::uri::Authority = name.parse().map_err(|_| refused())?;
    if name.is_empty() || authority.port().is_some() || name.contains('@') {
        return Err(refused());
    }
    Ok(name)
}

/// Server names appear on the command line, in URLs and in store keys.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
