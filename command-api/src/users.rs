//! Rows 2 and 3: register and log in.
//!
//! Register: validate, hash (argon2id, off the async threads), insert the account as pending,
//! append `UserRegistered`, mark it appended, issue a token. If the append fails the account row is
//! removed again, so a 503 leaves nothing behind; if the process dies in between, start-up
//! ([`recover_pending_registrations`]) appends the event.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::Serialize;
use titok_events::{EventBody, UserRegistered};
use titok_ports::accounts::AccountError;
use titok_ports::log::Position;
use titok_web::auth::{hash_password, verify_password};
use titok_web::http::{ApiError, Params, Reply};

use crate::{acknowledged, CommandState};

/// Most characters in a username or password (docs/api.md row 2).
pub const MAX_CREDENTIAL_CHARS: usize = 32;

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct SessionBody {
    pub user_id: i64,
    pub token: String,
}

fn credentials(params: &Params) -> Result<(String, String), ApiError> {
    let username = params.text("username")?;
    let password = params.text("password")?;
    let name_len = username.chars().count();
    if name_len == 0 || name_len > MAX_CREDENTIAL_CHARS || username.trim() != username {
        return Err(ApiError::bad(format!(
            "username must be 1–{MAX_CREDENTIAL_CHARS} characters without leading or trailing spaces"
        )));
    }
    let pass_len = password.chars().count();
    if pass_len == 0 || pass_len > MAX_CREDENTIAL_CHARS {
        return Err(ApiError::bad(format!(
            "password must be 1–{MAX_CREDENTIAL_CHARS} characters"
        )));
    }
    Ok((username.to_owned(), password.to_owned()))
}

fn session(state: &CommandState, user_id: i64) -> Result<SessionBody, ApiError> {
    let token = state
        .auth
        .keys
        .issue(user_id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot sign token: {e}")))?;
    Ok(SessionBody { user_id, token })
}

/// The client's address for the per-address quotas: the peer, or behind a trusted proxy what its
/// `X-Forwarded-For` names — every line of that header, in order, as one list (a client's own
/// `X-Forwarded-For` line comes first and cannot hide the proxy's).
fn client_address(state: &CommandState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let forwarded_for = (!lines.is_empty()).then(|| lines.join(","));
    state
        .login_limits
        .client_address(peer.ip(), forwarded_for.as_deref())
}

pub async fn register(
    State(state): State<CommandState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Params,
) -> Reply<SessionBody> {
    acknowledged(
        async {
            let (username, password) = credentials(&params)?;
            // Before the argon2 hash: sign-ups share the hashing pool with logins.
            let client = client_address(&state, peer, &headers);
            state.login_limits.check_register(client).await?;
            let (user_id, position) = register_user(&state, &username, &password).await?;
            Ok((session(&state, user_id)?, position))
        }
        .await,
    )
}

/// Register an account and append its `UserRegistered`; used by the handler and the sample seed.
pub async fn register_user(
    state: &CommandState,
    username: &str,
    password: &str,
) -> Result<(i64, Position), ApiError> {
    let password = password.to_owned();
    let password_check = password.clone();
    let hash = state
        .hash_work(move || hash_password(&password))
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot hash password: {e}")))?;
    let user_id = state.ids.next_id();
    match state.accounts.create(user_id, username, &hash).await {
        Ok(()) => {}
        Err(AccountError::UsernameTaken) => {
            return retried_registration(state, username, password_check).await
        }
        Err(err) => return Err(err.into()),
    }
    // If the append fails, its outcome is unknown (a Kafka timeout may still have written the
    // event), so the account stays pending instead of being removed: a retry of this register, a
    // login, or the next start appends `UserRegistered` again, and the idempotent fold applies it
    // once whichever of the appends landed.
    let position = append_registration(state, user_id, username).await?;
    Ok((user_id, position))
}

/// A register whose username is taken by a **pending** account with the same password is the
/// client retrying after a 503: finish that registration (same user id) instead of refusing.
async fn retried_registration(
    state: &CommandState,
    username: &str,
    password: String,
) -> Result<(i64, Position), ApiError> {
    let taken = || ApiError::from(AccountError::UsernameTaken);
    let Some(account) = state.accounts.by_username(username).await? else {
        return Err(taken());
    };
    if account.appended {
        return Err(taken());
    }
    let hash = account.password_hash.clone();
    let same = state
        .hash_work(move || verify_password(&password, &hash))
        .await?;
    if !same {
        return Err(taken());
    }
    tracing::info!(
        user_id = account.user_id,
        "register retried: appending the pending registration again"
    );
    let position = append_registration(state, account.user_id, &account.username).await?;
    Ok((account.user_id, position))
}

pub async fn login(
    State(state): State<CommandState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Params,
) -> Reply<SessionBody> {
    Reply::from(
        async {
            let (username, password) = credentials(&params)?;
            let client = client_address(&state, peer, &headers);
            state.login_limits.check(&username, Some(client)).await?;
            let wrong = || ApiError::Unauthenticated("wrong username or password".into());
            let account = state
                .accounts
                .by_username(&username)
                .await?
                .ok_or_else(wrong)?;
            let hash = account.password_hash.clone();
            let ok = state
                .hash_work(move || verify_password(&password, &hash))
                .await?;
            if !ok {
                return Err(wrong());
            }
            if !account.appended {
                append_registration(&state, account.user_id, &account.username).await?;
            }
            session(&state, account.user_id)
        }
        .await,
    )
}

async fn append_registration(
    state: &CommandState,
    user_id: i64,
    username: &str,
) -> Result<Position, ApiError> {
    let event = EventBody::UserRegistered(UserRegistered {
        user_id,
        username: username.to_owned(),
    });
    let position = state.append(user_id, event).await?;
    state.accounts.mark_appended(user_id).await?;
    Ok(position)
}

/// Append `UserRegistered` for accounts whose append was never confirmed (a crash mid-register).
pub async fn recover_pending_registrations(state: &CommandState) -> Result<usize, ApiError> {
    let pending = state.accounts.pending().await?;
    for account in &pending {
        append_registration(state, account.user_id, &account.username).await?;
        tracing::info!(
            user_id = account.user_id,
            "recovered a registration interrupted before its append"
        );
    }
    Ok(pending.len())
}
