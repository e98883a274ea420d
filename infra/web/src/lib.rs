//! # titok-web
//!
//! The HTTP layer both APIs share, above the ports and below the roles:
//!
//! - [`http`]: the Douyin envelope (one type for the replies and their OpenAPI schemas), the
//!   error enum (every failure a `status_code != 0` reply, 503 only for "cannot accept this right
//!   now"), lenient parameter parsing (`action_type` into each endpoint's action enum).
//! - [`auth`]: argon2id password hashes, signed, expiring tokens, and the [`auth::Authenticator`]
//!   both APIs check tokens with (against the `AccountStore` port).
//! - [`openapi`]: the OpenAPI document generated from the same routing tables the routers use.
//! - [`telemetry`]: the Prometheus recorder, the request middleware (request id, span, metrics).
//!
//! sqlx appears here for one reason: `From<sqlx::Error> for ApiError`, so that a view read's
//! error (the views crate returns sqlx errors) becomes a 503 envelope with `?`.

pub mod auth;
pub mod http;
pub mod openapi;
pub mod telemetry;
