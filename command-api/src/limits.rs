//! Login attempt limits, per username and per client address (in this process; with several
//! command API instances each enforces its own). Attempts over the quota get HTTP 429 with the
//! envelope and how long to wait, before any password is checked — so guessing is throttled and
//! the argon2 work an attacker can cause is bounded.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use titok_web::http::ApiError;

/// Keyed rate limiters for login attempts.
#[derive(Clone)]
pub struct LoginLimits {
    per_user: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LoginLimits {
    /// At most `per_user` attempts per minute for one username and `per_address` from one address.
    pub fn per_minute(per_user: u32, per_address: u32) -> LoginLimits {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimits {
            per_user: Arc::new(RateLimiter::keyed(quota(per_user))),
            per_address: Arc::new(RateLimiter::keyed(quota(per_address))),
        }
    }

    /// Count one attempt; refuse it when either quota is exhausted.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let refused = |wait: std::time::Duration, what: &str| {
            ApiError::TooManyRequests(format!(
                "too many login attempts {what}, try again in {} s",
                wait.as_secs().max(1)
            ))
        };
        let now = DefaultClock::default().now();
        if let Some(address) = address {
            self.per_address
                .check_key(&address)
                .map_err(|not_until| refused(not_until.wait_time_from(now), "from this address"))?;
        }
        self.per_user
            .check_key(&username.to_owned())
            .map_err(|not_until| refused(not_until.wait_time_from(now), "for this username"))?;
        // Forget keys whose quota is fully replenished, so the maps stay small.
        if every_1024th_call() {
            self.per_user.retain_recent();
            self.per_address.retain_recent();
        }
        Ok(())
    }
}

/// True once in 1024 calls.
fn every_1024th_call() -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_applies_per_username_and_per_address() {
        let limits = LoginLimits::per_minute(2, 3);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(limits.check("ann", Some(a)).is_ok());
        assert!(limits.check("ann", Some(a)).is_ok());
        assert!(
            limits.check("ann", Some(a)).is_err(),
            "third attempt for ann"
        );
        assert!(
            limits
                .check("bob", Some("127.0.0.2".parse().expect("ip")))
                .is_ok(),
            "other users are not affected"
        );
        let c: IpAddr = "10.0.0.9".parse().expect("ip");
        assert!(limits.check("u1", Some(c)).is_ok());
        assert!(limits.check("u2", Some(c)).is_ok());
        assert!(limits.check("u3", Some(c)).is_ok());
        assert!(
            limits.check("u4", Some(c)).is_err(),
            "fourth attempt from one address"
        );
    }
}
