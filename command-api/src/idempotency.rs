//! Safe client retries: a command sent with an `Idempotency-Key` (header, or the parameter
//! `idempotency_key`) takes effect once and answers the same reply however often it is retried —
//! on any command API instance and after restarts.
//!
//! The first attempt decides the event (its event id and the ids it creates: comment, message or
//! video id) and the reply, and stores both under `(user, key)` in the accounts store *before* it
//! appends. The ids of a key are therefore a fixed function of `(user, key)` from then on, while
//! staying time-ordered like every other id. A retry finds the record:
//! - acknowledged: the stored reply (and the event's position) without appending anything;
//! - not acknowledged (the append failed or timed out, so the event may or may not be in the log):
//!   the stored event is appended again, byte for byte. Should both copies be in the log, the
//!   folds apply it once (they are idempotent on the event's ids), and consumers of the topics
//!   see one event id twice.
//!
//! A key reused for another request (another command, other parameters, another upload) is
//! refused. Keys are scoped per user (the token's) and kept at least [`KEY_RETENTION_MS`].
//! Without a key nothing changes: the command decides and appends as before.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use titok_events::{Envelope, EventBody};
use titok_ports::accounts::KeyedCommand;
use titok_ports::log::Position;
use titok_web::http::{ApiError, Params, IDEMPOTENCY_PARAM};

use crate::CommandState;

/// Longest accepted key, characters.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a key is remembered at least (keys older than this are pruned).
pub const KEY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The request's idempotency key, if it has one; refused when empty, too long or not printable.
pub fn idempotency_key(params: &Params) -> Result<Option<String>, ApiError> {
    let Some(key) = params.get(IDEMPOTENCY_PARAM) else {
        return Ok(None);
    };
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ApiError::bad(format!(
            "Idempotency-Key must be 1–{MAX_KEY_CHARS} characters"
        )));
    }
    if key.trim() != key {
        return Err(ApiError::bad(
            "Idempotency-Key must not start or end with whitespace",
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "Idempotency-Key must not contain control characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 (hex) of the command's name, its parameters but the token and the key (sorted), and
/// `extra` (an upload's bytes).
pub fn fingerprint(command: &str, params: &Params, extra: &[u8]) -> String {
    let mut pairs: Vec<(&String, &String)> = params
        .0
        .iter()
        .filter(|(name, _)| name.as_str() != "token" && name.as_str() != IDEMPOTENCY_PARAM)
        .collect();
    pairs.sort();
    let mut hash = Sha256::new();
    hash.update(command.as_bytes());
    for (name, value) in pairs {
        for part in [name.as_bytes(), value.as_bytes()] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
    }
    hash.update((extra.len() as u64).to_le_bytes());
    hash.update(extra);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e))
}

impl CommandState {
    /// Run a command whose `decide` yields its event and reply: once per idempotency key when
    /// the request has one (see the module docs), else decided and appended as is.
    /// `fingerprint` identifies the request (see [`fingerprint`]).
    pub async fn once<T: Serialize + DeserializeOwned>(
        &self,
        actor: i64,
        key: Option<String>,
        fingerprint: impl FnOnce() -> String,
        decide: impl Future<Output = Result<(EventBody, T), ApiError>>,
    ) -> Result<(T, Position), ApiError> {
        let Some(key) = key else {
            let (body, reply) = decide.await?;
            let position = self.append(actor, body).await?;
            return Ok((reply, position));
        };
        let fingerprint = fingerprint();
        if let Some(stored) = self.keys.get(actor, &key).await? {
            return self.resume(actor, &key, &fingerprint, stored).await;
        }
        let (body, reply) = decide.await?;
        let event = self.envelope(actor, body);
        let command = KeyedCommand {
            fingerprint: fingerprint.clone(),
            event: event.encode(),
            reply: serde_json::to_string(&reply).map_err(internal)?,
            acked: None,
        };
        if let Some(stored) = self.keys.claim(actor, &key, &command).await? {
            // A concurrent attempt with the same key got there first: answer as its retry.
            return self.resume(actor, &key, &fingerprint, stored).await;
        }
        let position = self.append_event(event).await?;
        self.remember(actor, &key, &position).await;
        Ok((reply, position))
    }

    /// A retry: refused if the key was used for another request; else the stored reply, after
    /// appending the stored event again when its acknowledgement is not known.
    async fn resume<T: DeserializeOwned>(
        &self,
        actor: i64,
        key: &str,
        fingerprint: &str,
        stored: KeyedCommand,
    ) -> Result<(T, Position), ApiError> {
        if stored.fingerprint != fingerprint {
            return Err(ApiError::Conflict(
                "this Idempotency-Key was already used for a different request; use a new key"
                    .into(),
            ));
        }
        let reply: T = serde_json::from_str(&stored.reply).map_err(internal)?;
        let position = match stored.acked {
            Some(position) => {
                // Read-after-write for the retrying client, wherever the first attempt ran.
                self.record_acked(&[position]).await;
                position
            }
            None => {
                let event = Envelope::decode(&stored.event)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored event: {e}")))?;
                let position = self.append_event(event).await?;
                self.remember(actor, key, &position).await;
                position
            }
        };
        metrics::counter!("titok_idempotent_retries_total").increment(1);
        Ok((reply, position))
    }

    /// Record the key's acknowledged position. If that fails, the key stays "not known": a retry
    /// appends the same event once more, which the folds absorb.
    async fn remember(&self, actor: i64, key: &str, position: &Position) {
        if let Err(err) = self.keys.acknowledge(actor, key, position).await {
            tracing::warn!(error = %err, "cannot record an idempotency key's acknowledgement");
        }
    }
}

/// Forget keys older than [`KEY_RETENTION_MS`], every ten minutes, until shutdown.
pub async fn prune_keys(
    keys: std::sync::Arc<dyn titok_ports::accounts::CommandKeys>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        match keys.prune(titok_ports::now_ms() - KEY_RETENTION_MS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "forgot expired idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "cannot prune idempotency keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_fingerprint_ignores_token_and_key_but_not_parameters_or_command() {
        let a = params(&[("video_id", "1"), ("token", "x"), ("idempotency_key", "k")]);
        let b = params(&[("video_id", "1"), ("token", "y")]);
        let c = params(&[("video_id", "2"), ("token", "x")]);
        assert_eq!(fingerprint("like", &a, b""), fingerprint("like", &b, b""));
        assert_ne!(fingerprint("like", &a, b""), fingerprint("like", &c, b""));
        assert_ne!(fingerprint("like", &a, b""), fingerprint("follow", &a, b""));
        assert_ne!(
            fingerprint("like", &a, b""),
            fingerprint("like", &a, b"file")
        );
        // Name/value boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            fingerprint("x", &params(&[("ab", "c")]), b""),
            fingerprint("x", &params(&[("a", "bc")]), b"")
        );
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(idempotency_key(&params(&[])).expect("none"), None);
        assert!(idempotency_key(&params(&[("idempotency_key", "")])).is_err());
        assert!(idempotency_key(&params(&[("idempotency_key", "a\nb")])).is_err());
        // MySQL's PAD SPACE collations would take "k" and "k " for one key.
        assert!(idempotency_key(&params(&[("idempotency_key", "k ")])).is_err());
        assert!(idempotency_key(&params(&[("idempotency_key", " k")])).is_err());
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        assert!(idempotency_key(&params(&[("idempotency_key", long.as_str())])).is_err());
        assert_eq!(
            idempotency_key(&params(&[("idempotency_key", "retry-1")])).expect("ok"),
            Some("retry-1".into())
        );
    }
}
