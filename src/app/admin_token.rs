//! The admin token the status server's controls and export require, always:
//! `[status] admin_token` when the config has one, otherwise a random token
//! the daemon generates on its first start and keeps next to the store
//! (`admin-token`, mode 0600), where `mediasync admin-token` (as root, like
//! the daemon's state) and the CLI's client to the daemon read it.

use crate::config::Config;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "admin-token";

/// Random bytes of a generated token (32 URL-safe characters).
const TOKEN_BYTES: usize = 24;

#[derive(Debug)]
pub enum TokenError {
    Read(PathBuf, std::io::Error),
    Write(PathBuf, std::io::Error),
    Random(String),
    /// The file holds no usable token (edited by hand).
    Unusable(PathBuf),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Read(path, err) => write!(
                f,
                "cannot read the admin token in {}: {err}; run this as root, or set [status] admin_token_file to a file you can read",
                path.display()
            ),
            TokenError::Write(path, err) => write!(
                f,
                "cannot keep a generated admin token in {}: {err}; make the store's directory writable or set [status] admin_token",
                path.display()
            ),
            TokenError::Random(err) => write!(f, "cannot generate an admin token: {err}"),
            TokenError::Unusable(path) => write!(
                f,
                "{} holds no usable admin token; delete it and restart the daemon to get a new one",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenError::Read(_, err) | TokenError::Write(_, err) => Some(err),
            TokenError::Random(_) | TokenError::Unusable(_) => None,
        }
    }
}

/// Where the generated token lives: the store's directory.
pub fn path(config: &Config) -> PathBuf {
    config.store.path.parent().unwrap_or(Path::new("")).join(FILE_NAME)
}

/// The token in force: the config's, else the generated one if the daemon
/// has made it (`None` before its first start).
pub fn read(config: &Config) -> Result<Option<String>, TokenError> {
    if let Some(token) = &config.status.admin_token {
        return Ok(Some(token.clone()));
    }
    read_file(&path(config))
}

/// The token in force, generating and keeping one when the config has none
/// and none was generated yet. The file appears whole or not at all: the
/// token is written to a private temporary file, then linked into place,
/// which fails rather than replace a token another process just made.
pub fn load_or_create(config: &Config) -> Result<String, TokenError> {
    if let Some(token) = read(config)? {
        return Ok(token);
    }
    let path = path(config);
    let token = crate::source::spotify::auth::random_token(TOKEN_BYTES).map_err(TokenError::Random)?;
    let temporary = path.with_file_name(format!("{FILE_NAME}.{}.tmp", std::process::id()));
    let written = write_private(&temporary, &token).and_then(|()| std::fs::hard_link(&temporary, &path));
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
                let _ = std::fs::File::open(directory).and_then(|directory| directory.sync_all());
            }
            Ok(token)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read_file(&path)?.ok_or(TokenError::Unusable(path))
        }
        Err(err) => Err(TokenError::Write(path, err)),
    }
}

fn read_file(path: &Path) -> Result<Option<String>, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() < 16 || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(TokenError::Unusable(path.to_path_buf()));
            }
            Ok(Some(token.to_string()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(TokenError::Read(path.to_path_buf(), err)),
    }
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{token}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(dir: &Path, status: &str) -> Config {
        let text = format!(
            "[store]\npath = \"{}\"\n[[server]]\nname = \"home\"\nkind = \"plex\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\n{status}",
            dir.join("s.redb").display()
        );
        crate::config::parse(&text, &dir.join("c.toml")).unwrap()
    }

    #[test]
    fn a_token_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "");
        assert_eq!(read(&config).unwrap(), None, "nothing before the first start");
        let token = load_or_create(&config).unwrap();
        assert!(token.len() >= 32, "{token}");
        assert_eq!(load_or_create(&config).unwrap(), token, "a restart keeps the token");
        assert_eq!(read(&config).unwrap().as_deref(), Some(token.as_str()));
        let file = dir.path().join(FILE_NAME);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, [FILE_NAME], "a temporary file was left behind");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(&super::tests::config(other.path(), "")).unwrap(), token);
    }

    #[test]
    fn the_configured_token_wins_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let configured = config(dir.path(), "[status]\nadmin_token = \"configured-token\"\n");
        assert_eq!(load_or_create(&configured).unwrap(), "configured-token");
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing is generated when the config has a token");
        let generated = config(dir.path(), "");
        std::fs::write(dir.path().join(FILE_NAME), "short\n").unwrap();
        let refused = load_or_create(&generated).unwrap_err().to_string();
        assert!(refused.contains("admin-token") && refused.contains("delete it"), "{refused}");
    }
}
