//! Who calls the REST API: the bearer token is checked with a `TokenReview` against the management
//! cluster (docs/architecture.md#identity-and-permissions) and the answer cached briefly, keyed by
//! the token's SHA-256 so no token is kept in memory, in a cache of bounded size. A token not
//! in the cache costs a TokenReview, so those calls (and calls without a token) pass a limit
//! per client address first; each authenticated user then passes a rate limit of their own.

use super::ApiState;
use super::error::ApiError;
use crate::app::access::Caller;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many verdicts the cache holds at most; full, it drops expired ones and then the ones
/// closest to expiry.
const CACHE_MAX: usize = 10_000;

/// Calls per second (and burst) from one address that need a TokenReview or carry no token.
const UNAUTHENTICATED_PER_SECOND: u32 = 5;
const UNAUTHENTICATED_BURST: u32 = 20;

/// A token's verdict: the caller, or why it was refused.
type Verdict = Result<Caller, String>;

/// Verdicts by token hash, at most `CACHE_MAX` (10,000) of them.
#[derive(Default)]
pub struct VerdictCache {
    entries: HashMap<[u8; 32], (Instant, Verdict)>,
}

impl VerdictCache {
    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Verdict> {
        self.entries
            .get(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, verdict)| verdict.clone())
    }

    fn insert(&mut self, key: [u8; 32], expires: Instant, verdict: Verdict, now: Instant) {
        if self.entries.len() >= CACHE_MAX {
            self.entries.retain(|_, (expires, _)| *expires > now);
        }
        if self.entries.len() >= CACHE_MAX {
            // Still full of live verdicts (a flood of distinct tokens): keep the nine tenths
            // that stay valid longest.
            let mut by_expiry: Vec<([u8; 32], Instant)> =
                self.entries.iter().map(|(k, (e, _))| (*k, *e)).collect();
            by_expiry.sort_unstable_by_key(|(_, expires)| *expires);
            for (key, _) in by_expiry.iter().take(CACHE_MAX / 10) {
                self.entries.remove(key);
            }
        }
        self.entries.insert(key, (expires, verdict));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub struct TokenReviewer {
    client: Client,
    /// How long an accepted token is trusted without asking again.
    ttl: Duration,
    /// Refusals are cached shorter, so a token that just became valid works soon.
    negative_ttl: Duration,
    /// The audiences a token must be valid for (empty: the API server's own).
    audiences: Vec<String>,
    cache: Mutex<VerdictCache>,
    /// Calls that need a TokenReview or carry no token, per client address.
    unauthenticated: DefaultKeyedRateLimiter<IpAddr>,
}

impl TokenReviewer {
    pub fn new(client: Client, ttl: Duration, audiences: Vec<String>) -> Self {
        let quota =
            Quota::per_second(NonZeroU32::new(UNAUTHENTICATED_PER_SECOND).expect("non-zero"))
                .allow_burst(NonZeroU32::new(UNAUTHENTICATED_BURST).expect("non-zero"));
        Self {
            client,
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(5)),
            audiences,
            cache: Mutex::new(VerdictCache::default()),
            unauthenticated: RateLimiter::keyed(quota),
        }
    }

    /// Counts a call from `peer` that costs a TokenReview or has no token at all.
    fn check_unauthenticated(&self, peer: IpAddr) -> Result<(), ApiError> {
        self.unauthenticated.check_key(&peer).map_err(|not_until| {
            ApiError::rate_limited(not_until.wait_time_from(DefaultClock::default().now()))
        })?;
        if self.unauthenticated.len() > CACHE_MAX {
            self.unauthenticated.retain_recent();
        }
        Ok(())
    }

    pub async fn authenticate(&self, token: &str, peer: IpAddr) -> Result<Caller, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(verdict) = self.cache.lock().expect("token cache").get(&key, now) {
            return verdict.map_err(ApiError::unauthenticated);
        }
        self.check_unauthenticated(peer)?;
        let verdict = self.review(token).await?;
        let ttl = if verdict.is_ok() {
            self.ttl
        } else {
            self.negative_ttl
        };
        self.cache
            .lock()
            .expect("token cache")
            .insert(key, now + ttl, verdict.clone(), now);
        verdict.map_err(ApiError::unauthenticated)
    }

    async fn review(&self, token: &str) -> Result<Verdict, ApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "TokenReview failed");
                ApiError::unavailable(format!(
                    "cannot verify the bearer token: the management cluster's TokenReview failed: {e}"
                ))
            })?;
        let status = answer.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        if !audience_accepted(&self.audiences, status.audiences.as_deref()) {
            return Ok(Err(format!(
                "the bearer token is not valid for this API's audiences {:?}",
                self.audiences
            )));
        }
        Ok(match (status.authenticated, user.username) {
            (Some(true), Some(username)) if !username.is_empty() => Ok(Caller {
                username,
                groups: user.groups.unwrap_or_default(),
            }),
            _ => Err(format!(
                "the bearer token was not accepted by the management cluster{}",
                status.error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
        })
    }
}

/// With audiences asked for, the TokenReview answer lists those the token is valid for; one
/// of ours must be among them. Without, the API server's own audiences were checked.
fn audience_accepted(wanted: &[String], valid: Option<&[String]>) -> bool {
    wanted.is_empty() || valid.is_some_and(|valid| valid.iter().any(|a| wanted.contains(a)))
}

/// Requests per second and burst, per user.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(20).expect("non-zero"),
            burst: NonZeroU32::new(40).expect("non-zero"),
        }
    }
}

pub struct UserRateLimiter(DefaultKeyedRateLimiter<String>);

impl UserRateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self(RateLimiter::keyed(
            Quota::per_second(limit.per_second).allow_burst(limit.burst),
        ))
    }

    pub fn check(&self, user: &str) -> Result<(), ApiError> {
        self.0.check_key(&user.to_string()).map_err(|not_until| {
            ApiError::rate_limited(not_until.wait_time_from(DefaultClock::default().now()))
        })?;
        // Forget users idle long enough to be back at full burst.
        if self.0.len() > CACHE_MAX {
            self.0.retain_recent();
        }
        Ok(())
    }
}

/// The address a request came from, the key of the limits on unauthenticated calls.
pub struct PeerAddr(pub IpAddr);

impl PeerAddr {
    /// The listeners record each connection's peer; without one (in-process), one key.
    fn of(parts: &Parts) -> IpAddr {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Self::of(parts)))
    }
}

/// The authenticated, rate-limited caller of a handler.
pub struct Authenticated(pub Caller);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let peer = PeerAddr::of(parts);
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            state.tokens.check_unauthenticated(peer)?;
            return Err(ApiError::unauthenticated(
                "missing Authorization: Bearer header",
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        let caller = state.tokens.authenticate(token, peer).await?;
        state.limiter.check(&caller.username)?;
        Ok(Self(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_must_be_valid_for_one_of_the_configured_audiences() {
        let wanted = ["shepherd".to_string()];
        assert!(audience_accepted(&[], None), "no audiences configured");
        assert!(audience_accepted(
            &wanted,
            Some(&["shepherd".into(), "x".into()])
        ));
        assert!(!audience_accepted(
            &wanted,
            Some(&["https://kubernetes.default.svc".into()])
        ));
        assert!(!audience_accepted(&wanted, Some(&[])));
        assert!(
            !audience_accepted(&wanted, None),
            "an answer without audiences is refused"
        );
    }

    #[test]
    fn the_verdict_cache_never_grows_past_its_bound() {
        let now = Instant::now();
        let mut cache = VerdictCache::default();
        for i in 0..(CACHE_MAX + 500) {
            let key: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            let expires = now + Duration::from_secs(60) + Duration::from_millis(i as u64);
            cache.insert(key, expires, Err("no".into()), now);
            assert!(
                cache.len() <= CACHE_MAX,
                "{} entries after {i}",
                cache.len()
            );
        }
        // The newest verdict is kept; expired ones go first.
        let newest: [u8; 32] = Sha256::digest((CACHE_MAX + 499).to_le_bytes()).into();
        assert!(cache.get(&newest, now).is_some());
        // An hour on, they have all expired: once full, the cache drops those first and
        // keeps every live verdict.
        let later = now + Duration::from_secs(3600);
        let fresh: Vec<[u8; 32]> = (0..CACHE_MAX)
            .map(|i| Sha256::digest(format!("fresh-{i}")).into())
            .collect();
        for key in fresh.iter().chain(&fresh) {
            cache.insert(
                *key,
                later + Duration::from_secs(60),
                Err("no".into()),
                later,
            );
        }
        // Full of live verdicts that all expire alike, a flood still leaves most of them.
        for i in 0..CACHE_MAX {
            let key: [u8; 32] = Sha256::digest(format!("flood-{i}")).into();
            cache.insert(
                key,
                later + Duration::from_secs(60),
                Err("no".into()),
                later,
            );
            assert!(cache.len() <= CACHE_MAX);
        }
        assert!(cache.len() >= CACHE_MAX - CACHE_MAX / 10, "{}", cache.len());
    }
}
