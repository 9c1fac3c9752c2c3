//! Who calls the REST API: the bearer token is checked with a `TokenReview` against the management
//! cluster (docs/architecture.md#identity-and-permissions) and the answer cached briefly, keyed by
//! the token's SHA-256 so no token is kept in memory. Each authenticated user then passes a rate
//! limit.

use super::ApiState;
use super::error::ApiError;
use crate::app::access::Caller;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many verdicts the cache holds before it drops expired ones.
const CACHE_SWEEP_AT: usize = 10_000;

/// A token's verdict: the caller, or why it was refused.
type Verdict = Result<Caller, String>;

pub struct TokenReviewer {
    client: Client,
    /// How long an accepted token is trusted without asking again.
    ttl: Duration,
    /// Refusals are cached shorter, so a token that just became valid works soon.
    negative_ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

impl TokenReviewer {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(5)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((expires, verdict)) = self.cache.lock().expect("token cache").get(&key)
            && *expires > now
        {
            return verdict.clone().map_err(ApiError::unauthenticated);
        }
        let verdict = self.review(token).await?;
        let ttl = if verdict.is_ok() {
            self.ttl
        } else {
            self.negative_ttl
        };
        let mut cache = self.cache.lock().expect("token cache");
        if cache.len() >= CACHE_SWEEP_AT {
            cache.retain(|_, (expires, _)| *expires > now);
        }
        cache.insert(key, (now + ttl, verdict.clone()));
        verdict.map_err(ApiError::unauthenticated)
    }

    async fn review(&self, token: &str) -> Result<Verdict, ApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
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
        if self.0.len() > CACHE_SWEEP_AT {
            self.0.retain_recent();
        }
        Ok(())
    }
}

/// The authenticated, rate-limited caller of a handler.
pub struct Authenticated(pub Caller);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        let caller = state.tokens.authenticate(token).await?;
        state.limiter.check(&caller.username)?;
        Ok(Self(caller))
    }
}
