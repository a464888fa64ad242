//! Browser sessions for the read-only web pages that extensions serve under `/ui/`.
//!
//! A browser cannot present the bearer token a ServiceAccount holds, so `POST /ui/login` takes
//! one from a form, checks it as every bearer token is checked, and keeps it in a cookie
//! (`__Host-` prefixed: HTTPS only, this host only, path `/`; `HttpOnly`; `SameSite=Strict`)
//! that expires with the token. The cookie is a credential only for GETs of extension paths,
//! never for the Kubernetes API, so a page elsewhere cannot use it to write anything. Logins
//! from another site are refused, and every `/ui/` answer carries headers that forbid scripts,
//! framing, sniffing, referrers and caching.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::auth::tokens::TokenSigner;

/// Where the pages live.
pub const PREFIX: &str = "/ui/";
/// The login form, and where it is posted.
pub const LOGIN: &str = "/ui/login";
/// Where a session ends.
pub const LOGOUT: &str = "/ui/logout";
/// The session cookie.
pub const COOKIE: &str = "__Host-garrison-session";
/// Largest login form accepted: a token is at most 8 KiB.
const MAX_FORM: usize = 16 * 1024;

/// The headers every page answer carries: no script runs, nothing frames the page, nothing
/// is fetched from elsewhere, and nothing is cached or leaks through a referrer.
const HARDENING: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Whether `path` is one of the pages.
pub fn is_page(path: &str) -> bool {
    path == PREFIX.trim_end_matches('/') || path.starts_with(PREFIX)
}

/// Adds the page headers to `resp`.
pub fn harden(resp: &mut Response) {
    for (k, v) in HARDENING {
        // An answer's own caching, such as the stylesheet's, stays.
        if k == "cache-control" && resp.headers().contains_key(header::CACHE_CONTROL) {
            continue;
        }
        resp.headers_mut().insert(k, HeaderValue::from_static(v));
    }
}

/// The session token the request's cookie carries, if any.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A redirect to `location` (a path of this server).
pub fn redirect(location: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    harden(&mut resp);
    resp
}

/// The host a request addressed: HTTP/2's `:authority`, or HTTP/1's `Host`.
fn addressed<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        })
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site`, or else an
/// `Origin` whose host is not `host`, the one addressed.
fn cross_site(headers: &HeaderMap, host: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"));
    origin_host.is_none() || origin_host != host
}

fn cookie(value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// `POST /ui/login`: checks the form's ServiceAccount token and, if it holds, starts a session
/// that ends when the token expires. A refused token sends the browser back to the form with
/// the reason; the token itself is never logged or echoed. Also names the user signed in, for
/// the audit log.
pub async fn login(srv: &ApiServer, req: Request<Body>) -> (Response, Option<UserInfo>) {
    let host = addressed(&req);
    let (parts, body) = req.into_parts();
    // Read before answering, even to refuse: HTTP/2 clients lose an answer that arrives while
    // they are still sending.
    let form = axum::body::to_bytes(body, MAX_FORM).await;
    if cross_site(&parts.headers, host.as_deref()) {
        tracing::info!("login from another site refused");
        return (refused("logins from another site are refused\n"), None);
    }
    let Ok(form) = form else {
        return (redirect(&format!("{LOGIN}?error=malformed")), None);
    };
    let token: Option<String> = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&form)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "token"))
        .map(|(_, v)| v.trim().to_string());
    let Some(token) = token.filter(|t| TokenSigner::looks_like_jwt(t)) else {
        return (redirect(&format!("{LOGIN}?error=malformed")), None);
    };
    let now = jiff::Timestamp::now().as_second();
    match srv
        .tokens
        .authenticate(&srv.objects.store, &token, &[], now)
    {
        Ok(claims) => {
            let user = claims.user();
            tracing::info!(user = %user.name, "web session started");
            let mut resp = redirect(PREFIX);
            resp.headers_mut()
                .insert(header::SET_COOKIE, cookie(&token, claims.expires - now));
            (resp, Some(user))
        }
        Err(e) => {
            tracing::info!(reason = %e, "web login refused");
            let mut resp = redirect(&format!("{LOGIN}?error=refused"));
            // Told apart from a success (303) in the audit log.
            *resp.status_mut() = StatusCode::FOUND;
            (resp, None)
        }
    }
}

/// `POST /ui/logout`: ends the session and returns to the form.
pub async fn logout(req: Request<Body>) -> Response {
    let host = addressed(&req);
    let (parts, body) = req.into_parts();
    let _ = axum::body::to_bytes(body, MAX_FORM).await;
    if cross_site(&parts.headers, host.as_deref()) {
        return refused("logouts from another site are refused\n");
    }
    let mut resp = redirect(LOGIN);
    resp.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    resp
}

fn refused(why: &'static str) -> Response {
    let mut resp = Response::new(Body::from(why));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    harden(&mut resp);
    resp
}

/// The user a session cookie stands for, for a GET of an extension path; `None` when the
/// request is no such GET, has no cookie, or its token no longer holds.
pub fn session_user(srv: &ApiServer, method: &Method, headers: &HeaderMap) -> Option<UserInfo> {
    if method != Method::GET {
        return None;
    }
    // SameSite=Strict lets a sibling subdomain or port through: a browser that says the
    // request comes from another origin does not get the session, so another page cannot make
    // the hub do the history's heavy work in the auditor's name.
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        tracing::info!(site, "web session from another origin refused");
        return None;
    }
    let token = session_token(headers)?;
    if !TokenSigner::looks_like_jwt(token) {
        return None;
    }
    super::service_account_user(srv, token)
        .map_err(|e| tracing::info!(reason = %e, "web session refused"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_only_by_its_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "a=1; x__Host-garrison-session=evil; __Host-garrison-session=tok",
            ),
        );
        assert_eq!(session_token(&h), Some("tok"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("garrison-session=tok"),
        );
        assert_eq!(session_token(&h), None);
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let with = |uri: &str, pairs: &[(&'static str, &'static str)]| {
            let mut req = Request::builder().uri(uri);
            for (k, v) in pairs {
                req = req.header(*k, *v);
            }
            let req = req.body(()).unwrap();
            cross_site(req.headers(), addressed(&req).as_deref())
        };
        assert!(!with("/ui/login", &[("sec-fetch-site", "same-origin")]));
        assert!(with("/ui/login", &[("sec-fetch-site", "cross-site")]));
        assert!(with("/ui/login", &[("sec-fetch-site", "same-site")]));
        // HTTP/1 names the host in a header, HTTP/2 in the URI.
        assert!(!with(
            "/ui/login",
            &[("origin", "https://hub:6443"), ("host", "hub:6443")]
        ));
        assert!(!with(
            "https://hub:6443/ui/login",
            &[("origin", "https://hub:6443")]
        ));
        assert!(with(
            "https://hub:6443/ui/login",
            &[("origin", "https://evil.example")]
        ));
        assert!(with(
            "/ui/login",
            &[("origin", "https://evil.example"), ("host", "hub:6443")]
        ));
        assert!(with(
            "/ui/login",
            &[("origin", "null"), ("host", "hub:6443")]
        ));
        assert!(with("/ui/login", &[("origin", "https://hub:6443")]));
        // Not a browser: nothing to tell.
        assert!(!with("/ui/login", &[]));
    }
}
