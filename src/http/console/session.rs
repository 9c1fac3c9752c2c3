//! Logging in and out, the session cookie, and the CSRF check of every form.
//!
//! Cookies use the `__Host-` prefix (Secure, Path=/, no Domain: no other host can set or
//! read them), HttpOnly and SameSite=Strict. The login form is protected too (a login CSRF
//! would log a victim in as the attacker): GET /ui/login sets a short-lived random cookie
//! that the form repeats.

use super::{ConsoleError, view};
use crate::app::sessions::{self, Session};
use crate::http::api::ApiState;
use crate::http::api::auth::PeerAddr;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

const SESSION_COOKIE: &str = "__Host-shepherd-session";
const LOGIN_COOKIE: &str = "__Host-shepherd-login";
/// How long the login form stays usable.
const LOGIN_FORM_SECONDS: u64 = 600;

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn set_cookie(name: &str, value: &str, max_age_seconds: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    ))
    .expect("cookie values are base64url")
}

fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The logged-in user of a console request. Without a live session the request is sent
/// to the login page (and an expired session's cookie is cleared).
pub struct Console {
    pub session: Session,
}

impl FromRequestParts<ApiState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let to_login = |had_cookie: bool| {
            let mut response = Redirect::to("/ui/login").into_response();
            if had_cookie {
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
            }
            response
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(false));
        };
        let session = sessions::find(&state.pool, id)
            .await
            .map_err(|e| ConsoleError::from(e).into_response())?;
        let Some(session) = session else {
            return Err(to_login(true));
        };
        state
            .limiter
            .check(&session.caller.username)
            .map_err(|e| ConsoleError::from(e).into_response())?;
        Ok(Self { session })
    }
}

/// A POSTed form of a logged-in user whose `csrf` field is the session's token; anything
/// else is refused before the handler runs. Refused too: a browser telling us the form came
/// from another site.
pub struct CsrfForm<T> {
    pub console: Console,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<ApiState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        let cross_site = parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        if cross_site || !same_secret(&field.csrf, &console.session.csrf_token) {
            tracing::warn!(
                user = %console.session.caller.username,
                cross_site,
                "console form refused: missing or wrong CSRF token"
            );
            return Err(ConsoleError::Csrf.into_response());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            ConsoleError::from(crate::app::AppError::invalid("form", e)).into_response()
        })?;
        Ok(Self { console, form })
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    code: Option<String>,
}

/// GET /ui/login: the token form (or the inbox, when already logged in). With `code` (a
/// link from `kubectl shepherd ui`), a button that uses it: opening a link logs nobody in
/// by itself, so a link previewer cannot use the code up.
pub async fn login_form(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = sessions::find(&state.pool, id).await
    {
        return Redirect::to("/ui/").into_response();
    }
    let code = query.code.filter(|c| !c.is_empty());
    login_page(StatusCode::OK, None, code.as_deref())
}

fn login_page(status: StatusCode, error: Option<&str>, code: Option<&str>) -> Response {
    let nonce = sessions::random_token();
    let mut response = (status, view::login_page(&nonce, error, code)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &nonce, LOGIN_FORM_SECONDS),
    );
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    /// A one-time code of `kubectl shepherd ui`, instead of a token.
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

/// POST /ui/login: the token is checked with TokenReview (or the one-time code used up); a
/// session opens for its user.
pub async fn login(
    State(state): State<ApiState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, expected) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("The login form expired or was sent from another site; try again."),
            None,
        );
    }
    let (token, code) = (form.token.trim(), form.code.trim());
    let opened = if !code.is_empty() {
        match sessions::open_with_code(&state.pool, code, state.session_ttl).await {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                return login_page(
                    StatusCode::UNAUTHORIZED,
                    Some(
                        "This login link was used already or has expired: run `kubectl shepherd ui` \
                         again, or paste a token.",
                    ),
                    None,
                );
            }
            Err(e) => return ConsoleError::from(e).into_response(),
        }
    } else if token.is_empty() {
        return login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Paste a bearer token: the field token must not be empty."),
            None,
        );
    } else {
        let caller = match state.tokens.authenticate(token, peer).await {
            Ok(caller) => caller,
            Err(e) => return login_page(e.status, Some(&e.body.message), None),
        };
        match sessions::open(&state.pool, &caller, state.session_ttl).await {
            Ok(opened) => (caller, opened),
            Err(e) => return ConsoleError::from(e).into_response(),
        }
    };
    let (caller, opened) = opened;
    // A session this browser had (another user's, say) ends with the new login.
    if let Some(previous) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = sessions::close(&state.pool, previous).await
    {
        tracing::warn!(error = %e, "could not end the browser's previous console session");
    }
    tracing::info!(user = %caller.username, expires_at = %opened.expires_at, "console login");
    let mut response = Redirect::to("/ui/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &opened.id, state.session_ttl.as_secs()),
    );
    headers.append(header::SET_COOKIE, clear_cookie(LOGIN_COOKIE));
    response
}

/// POST /ui/logout: the session ends on the server; the cookie is cleared.
pub async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    CsrfForm { console, .. }: CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, ConsoleError> {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        sessions::close(&state.pool, id).await?;
    }
    tracing::info!(user = %console.session.caller.username, "console logout");
    let mut response = Redirect::to("/ui/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; x__Host-shepherd-session=no"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-shepherd-session=yes"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-shepherd-login="),
        );
        assert_eq!(
            cookie(&empty, LOGIN_COOKIE),
            None,
            "an empty value is no cookie"
        );
    }

    #[test]
    fn session_cookies_are_host_only_secure_httponly_and_strict() {
        let value = set_cookie(SESSION_COOKIE, "abc", 60);
        let text = value.to_str().unwrap();
        for part in [
            "__Host-shepherd-session=abc",
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(text.split("; ").any(|p| p == part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"), "{text}");
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", "abc"));
        assert!(!same_secret("abc", "abcd"));
    }
}
