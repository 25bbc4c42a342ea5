//! What a source keeps between runs outside the catalog: an account's OAuth
//! tokens (Spotify) and the time before which the server must not be asked
//! again (a rate limit's `Retry-After`, a spent daily quota). One JSON record
//! per server in `sessions`, read and written whole in one transaction, so a
//! rotated refresh token replaces the old one atomically and a wait noted
//! just before a crash is honoured after the restart.

use super::tables::SESSIONS;
use super::{Store, StoreError};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// When the access token expires (epoch seconds, local clock).
    #[serde(default)]
    pub access_expires_at: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    /// When the account was connected (epoch seconds).
    #[serde(default)]
    pub connected_at: Option<i64>,
    /// Set when the account must be connected again, with the reason (a
    /// refresh token refused as `invalid_grant`).
    #[serde(default)]
    pub reauthorize: Option<String>,
    /// No request to the server before this time (epoch seconds).
    #[serde(default)]
    pub not_before: Option<i64>,
    /// Why: "rate limit" or "daily quota".
    #[serde(default)]
    pub not_before_reason: Option<String>,
}

impl Session {
    pub fn connected(&self) -> bool {
        self.refresh_token.is_some() && self.reauthorize.is_none()
    }

    /// The pause still running at `now`, if any.
    pub fn waiting_until(&self, now: i64) -> Option<i64> {
        self.not_before.filter(|until| *until > now)
    }
}

/// Tokens never reach a log line through `{:?}`.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Session")
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("access_token", &redacted(&self.access_token))
            .field("access_expires_at", &self.access_expires_at)
            .field("scope", &self.scope)
            .field("connected_at", &self.connected_at)
            .field("reauthorize", &self.reauthorize)
            .field("not_before", &self.not_before)
            .field("not_before_reason", &self.not_before_reason)
            .finish()
    }
}

impl Store {
    pub fn session(&self, server: &str) -> Result<Session, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SESSIONS)?;
        let value = table.get(server)?;
        match value {
            Some(value) => serde_json::from_slice(value.value()).map_err(StoreError::Record),
            None => Ok(Session::default()),
        }
    }

    /// Reads, changes and writes the server's session in one write
    /// transaction; returns the session as written.
    pub fn update_session(&self, server: &str, change: impl FnOnce(&mut Session)) -> Result<Session, StoreError> {
        let txn = self.db.begin_write()?;
        let session = {
            let mut table = txn.open_table(SESSIONS)?;
            let mut session = match table.get(server)? {
                Some(value) => serde_json::from_slice(value.value()).map_err(StoreError::Record)?,
                None => Session::default(),
            };
            change(&mut session);
            let json = serde_json::to_vec(&session).map_err(StoreError::Record)?;
            table.insert(server, json.as_slice())?;
            session
        };
        self.commit(txn)?;
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_debug_hides_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb"), 1 << 20).unwrap();
        assert_eq!(store.session("spotify").unwrap(), Session::default());
        let written = store
            .update_session("spotify", |session| {
                session.refresh_token = Some("refresh-secret".into());
                session.not_before = Some(100);
            })
            .unwrap();
        assert_eq!(store.session("spotify").unwrap(), written);
        assert!(written.connected());
        assert_eq!(written.waiting_until(99), Some(100));
        assert_eq!(written.waiting_until(100), None);
        let shown = format!("{written:?}");
        assert!(!shown.contains("refresh-secret") && shown.contains("<redacted>"), "{shown}");
    }
}
