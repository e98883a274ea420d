//! Uploads at once, per process and per user ([`Uploads`]); login attempt limits, per username and per client address, and sign-ups per client address
//! (per hour). Attempts over the quota get HTTP 429 with the envelope and how long to wait, before
//! any password is checked or hashed — so guessing is throttled and the argon2 work an attacker
//! can cause is bounded.
//!
//! With Redis configured the quotas are shared by every command API instance
//! ([`titok_ports::limits::AttemptLimits`]); while Redis cannot be reached, and without Redis,
//! each instance enforces them in process.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use titok_ports::limits::AttemptLimits;
use titok_web::http::ApiError;

/// Keyed rate limiters for login attempts.
#[derive(Clone)]
pub struct LoginLimits {
    per_user: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    registers: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    quotas: (u32, u32),
    /// Sign-ups per address per hour.
    registers_quota: u32,
    shared: Option<Arc<dyn AttemptLimits>>,
    /// Load balancers whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    trusted_proxies: Arc<[TrustedProxy]>,
}

impl LoginLimits {
    /// At most `per_user` attempts per minute for one username and `per_address` from one address.
    pub fn per_minute(per_user: u32, per_address: u32) -> LoginLimits {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimits {
            per_user: Arc::new(RateLimiter::keyed(quota(per_user))),
            per_address: Arc::new(RateLimiter::keyed(quota(per_address))),
            registers: Arc::new(RateLimiter::keyed(hourly(DEFAULT_REGISTERS_PER_HOUR))),
            quotas: (per_user.max(1), per_address.max(1)),
            registers_quota: DEFAULT_REGISTERS_PER_HOUR,
            shared: None,
            trusted_proxies: Arc::new([]),
        }
    }

    /// At most `n` sign-ups per hour from one client address.
    pub fn registers_per_hour(self, n: u32) -> LoginLimits {
        LoginLimits {
            registers: Arc::new(RateLimiter::keyed(hourly(n))),
            registers_quota: n.max(1),
            ..self
        }
    }

    /// Count one sign-up from `address`; refuse it when the address's hourly quota is used up.
    pub async fn check_register(&self, address: IpAddr) -> Result<(), ApiError> {
        let hour = Duration::from_secs(3600);
        let refused = |wait: Duration| {
            ApiError::TooManyRequests(format!(
                "too many sign-ups from this address, try again in {} s",
                wait.as_secs().max(1)
            ))
        };
        if let Some(shared) = &self.shared {
            let key = format!("register:a:{address}");
            match shared.attempt(&key, self.registers_quota, hour).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(refused(wait)),
                Err(err) => {
                    tracing::warn!(error = %err, "shared sign-up limits unavailable; limiting in process")
                }
            }
        }
        let now = DefaultClock::default().now();
        self.registers
            .check_key(&address)
            .map_err(|not_until| refused(not_until.wait_time_from(now)))?;
        if every_1024th_call() {
            self.registers.retain_recent();
        }
        Ok(())
    }

    /// Take the client address from `X-Forwarded-For` when the peer is one of `proxies`.
    pub fn behind(self, proxies: Vec<TrustedProxy>) -> LoginLimits {
        LoginLimits {
            trusted_proxies: proxies.into(),
            ..self
        }
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the last address
    /// in `X-Forwarded-For` that is not itself a trusted proxy (entries to its left were written
    /// by the client and prove nothing).
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|p| p.0.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// The same quotas kept in `shared` (Redis), so they hold across instances.
    pub fn shared(self, shared: Arc<dyn AttemptLimits>) -> LoginLimits {
        LoginLimits {
            shared: Some(shared),
            ..self
        }
    }

    /// Count one attempt; refuse it when either quota is exhausted.
    pub async fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(shared) = &self.shared {
            match self.check_shared(shared.as_ref(), username, address).await {
                Ok(verdict) => return verdict,
                Err(err) => {
                    tracing::warn!(error = %err, "shared login limits unavailable; limiting in process")
                }
            }
        }
        self.check_local(username, address)
    }

    async fn check_shared(
        &self,
        shared: &dyn AttemptLimits,
        username: &str,
        address: Option<IpAddr>,
    ) -> Result<Result<(), ApiError>, titok_ports::limits::LimitsError> {
        let minute = Duration::from_secs(60);
        if let Some(address) = address {
            let key = format!("login:a:{address}");
            if let Some(wait) = shared.attempt(&key, self.quotas.1, minute).await? {
                return Ok(Err(refused(wait, "from this address")));
            }
        }
        let key = format!("login:u:{username}");
        if let Some(wait) = shared.attempt(&key, self.quotas.0, minute).await? {
            return Ok(Err(refused(wait, "for this username")));
        }
        Ok(Ok(()))
    }

    fn check_local(&self, username: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
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

/// A `--trusted-proxy` value: one address (`10.0.0.5`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(pub ipnet::IpNet);

impl std::str::FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(TrustedProxy)
            .map_err(|_| format!("{s:?} is neither an IP address nor a network like 10.0.0.0/8"))
    }
}

/// Sign-ups per client address per hour unless configured (`--registers-per-address`): enough
/// for a household or an office behind one address, not for a script creating accounts.
pub const DEFAULT_REGISTERS_PER_HOUR: u32 = 30;

fn hourly(n: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn refused(wait: Duration, what: &str) -> ApiError {
    ApiError::TooManyRequests(format!(
        "too many login attempts {what}, try again in {} s",
        wait.as_secs().max(1)
    ))
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
        assert!(limits.check_local("ann", Some(a)).is_ok());
        assert!(limits.check_local("ann", Some(a)).is_ok());
        assert!(
            limits.check_local("ann", Some(a)).is_err(),
            "third attempt for ann"
        );
        assert!(
            limits
                .check_local("bob", Some("127.0.0.2".parse().expect("ip")))
                .is_ok(),
            "other users are not affected"
        );
        let c: IpAddr = "10.0.0.9".parse().expect("ip");
        assert!(limits.check_local("u1", Some(c)).is_ok());
        assert!(limits.check_local("u2", Some(c)).is_ok());
        assert!(limits.check_local("u3", Some(c)).is_ok());
        assert!(
            limits.check_local("u4", Some(c)).is_err(),
            "fourth attempt from one address"
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let lb: IpAddr = "10.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.7".parse().expect("ip");
        let proxy = |s: &str| s.parse::<TrustedProxy>().expect("proxy");
        let limits = LoginLimits::per_minute(1, 1).behind(vec![proxy("10.0.0.1")]);
        let xff = Some("198.51.100.1, 203.0.113.7");
        assert_eq!(limits.client_address(lb, xff), client, "the proxy's view");
        assert_eq!(
            limits.client_address(client, Some("1.2.3.4")),
            client,
            "an untrusted peer cannot name another address"
        );
        assert_eq!(limits.client_address(lb, None), lb);
        assert_eq!(limits.client_address(lb, Some("garbage")), lb);
        let two = LoginLimits::per_minute(1, 1).behind(vec![proxy("10.0.0.0/30")]);
        assert_eq!(
            two.client_address(lb, Some("203.0.113.7, 10.0.0.2")),
            client,
            "a chain of trusted proxies"
        );
        assert!("not-an-ip".parse::<TrustedProxy>().is_err());
    }

    #[tokio::test]
    async fn sign_ups_are_limited_per_address() {
        let limits = LoginLimits::per_minute(10, 10).registers_per_hour(2);
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        assert!(limits.check_register(a).await.is_ok());
        assert!(limits.check_register(a).await.is_ok());
        let third = limits.check_register(a).await;
        assert!(
            matches!(&third, Err(ApiError::TooManyRequests(m)) if m.contains("sign-ups")),
            "{third:?}"
        );
        assert!(limits
            .check_register("203.0.113.8".parse().expect("ip"))
            .await
            .is_ok());
    }
}

/// How many uploads are received at once: per process (over it, 503 — the machine's memory and
/// store connections are the limit) and per user (over it, 429). Each upload holds a few
/// multipart parts in memory, so the process bound is also a memory bound.
#[derive(Clone)]
pub struct Uploads {
    server: Arc<tokio::sync::Semaphore>,
    per_user: Arc<std::sync::Mutex<std::collections::HashMap<i64, usize>>>,
    server_max: usize,
    per_user_max: usize,
}

/// One admitted upload; dropping it lets the next one in.
pub struct UploadPermit {
    _server: tokio::sync::OwnedSemaphorePermit,
    user: Option<(i64, Uploads)>,
}

impl Uploads {
    pub fn new(server_max: usize, per_user_max: usize) -> Uploads {
        Uploads {
            server: Arc::new(tokio::sync::Semaphore::new(server_max.max(1))),
            per_user: Arc::default(),
            server_max: server_max.max(1),
            per_user_max: per_user_max.max(1),
        }
    }

    /// Admit one upload to this process, or refuse it with 503 at once.
    pub fn admit(&self) -> Result<UploadPermit, ApiError> {
        let permit = self.server.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy(format!(
                "too many uploads in progress (at most {} at once); try again shortly",
                self.server_max
            ))
        })?;
        Ok(UploadPermit {
            _server: permit,
            user: None,
        })
    }

    /// Count the admitted upload against `user`, or refuse it with 429.
    pub fn admit_user(&self, permit: &mut UploadPermit, user: i64) -> Result<(), ApiError> {
        let mut counts = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(user).or_default();
        if *count >= self.per_user_max {
            return Err(ApiError::TooManyRequests(format!(
                "you are already uploading {} videos at once; wait for one to finish",
                self.per_user_max
            )));
        }
        *count += 1;
        permit.user = Some((user, self.clone()));
        Ok(())
    }
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        if let Some((user, uploads)) = self.user.take() {
            let mut counts = uploads.per_user.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = counts.get_mut(&user) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&user);
                }
            }
        }
    }
}
