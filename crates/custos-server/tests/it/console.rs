//! The web console's security rules over HTTP, without a browser (the
//! browser tests are `custos-cli/tests/it/web_*.rs`): headers, cookies, CSRF,
//! role checks from the API's matrix, escaping, language choice.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use custos_ledger::governance;
use custos_ledger::Role;
use custos_server::ui::CSP;

use crate::util::*;

/// `name=value` of a Set-Cookie header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A form's hidden `csrf` value in a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

impl TestLedger {
    /// `method uri` as a browser sends it: with these cookies and headers,
    /// and a form body when given.
    async fn visit(
        &self,
        method: Method,
        uri: &str,
        cookies: &[&str],
        headers: &[(&str, &str)],
        form: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if !cookies.is_empty() {
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// Sign in with `token`: the session cookie pair.
    async fn sign_in(&self, token: &str) -> Result<String, Answer> {
        let form = self.visit(Method::GET, "/ui/login", &[], &[], None).await;
        let pre = pair(&form.cookie("custos_login_csrf").unwrap());
        let csrf = csrf_of(&form.text());
        let body = format!("token={}&csrf={csrf}", url_encode(token));
        let r = self
            .visit(Method::POST, "/ui/login", &[&pre], &[], Some(&body))
            .await;
        match r.cookie("custos_session") {
            Some(c) if r.status == StatusCode::SEE_OTHER => Ok(pair(&c)),
            _ => Err(r),
        }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn headers_cookies_and_sign_in() {
    let env = TestLedger::new().await;
    let r = env.visit(Method::GET, "/ui/login", &[], &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
    assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(!r.text().contains("<script>"), "no inline script");
    let pre = r.cookie("custos_login_csrf").unwrap();
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    assert!(!pre.contains("Secure"), "{pre}");
    let tls = env
        .visit(
            Method::GET,
            "/ui/login",
            &[],
            &[("x-forwarded-proto", "https")],
            None,
        )
        .await;
    assert!(tls
        .cookie("custos_login_csrf")
        .unwrap()
        .contains("; Secure"));

    // The sign-in form's CSRF check.
    let body = format!(
        "token={}&csrf=forged",
        url_encode(env.token(Role::Reviewer))
    );
    let r = env
        .visit(Method::POST, "/ui/login", &[&pair(&pre)], &[], Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("custos_session").is_none());

    // A wrong token, then roles the console is not for.
    assert_eq!(
        env.sign_in("custos_0123456789abcdef_nope")
            .await
            .unwrap_err()
            .status,
        StatusCode::UNAUTHORIZED
    );
    for role in [Role::Admin, Role::Officer] {
        let e = env.sign_in(env.token(role)).await.unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN, "{role}");
    }

    // A reviewer signs in: an HttpOnly, SameSite=Strict session cookie.
    let form = env.visit(Method::GET, "/ui/login", &[], &[], None).await;
    let pre = pair(&form.cookie("custos_login_csrf").unwrap());
    let body = format!(
        "token={}&csrf={}",
        url_encode(env.token(Role::Reviewer)),
        csrf_of(&form.text())
    );
    let r = env
        .visit(Method::POST, "/ui/login", &[&pre], &[], Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let session = r.cookie("custos_session").unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/ui")
    );
    let session = pair(&session);
    let page = env
        .visit(Method::GET, "/ui/search", &[&session], &[], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("reviewer-1"));

    // Sign-out needs the CSRF token, then ends the session.
    let r = env
        .visit(
            Method::POST,
            "/ui/logout",
            &[&session],
            &[],
            Some("csrf=forged"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let body = format!("csrf={}", csrf_of(&page.text()));
    let r = env
        .visit(Method::POST, "/ui/logout", &[&session], &[], Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = env
        .visit(Method::GET, "/ui/search", &[&session], &[], None)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/ui/login");
    env.ledger.close().await;
}

#[tokio::test]
async fn roles_csrf_and_escaping() {
    let env = TestLedger::new().await;
    let rev = env.sign_in(env.token(Role::Reviewer)).await.ok().unwrap();
    let sup = env.sign_in(env.token(Role::Supervisor)).await.ok().unwrap();
    let aud = env.sign_in(env.token(Role::Auditor)).await.ok().unwrap();

    let cases = env
        .visit(Method::GET, "/ui/cases", &[&sup], &[], None)
        .await;
    let sup_csrf = csrf_of(&cases.text());
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    // A forged CSRF token changes nothing.
    let r = env
        .visit(
            Method::POST,
            "/ui/cases",
            &[&sup],
            &[],
            Some(&format!("csrf=nope&title={}", url_encode(hostile))),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(governance::cases(&env.ledger).unwrap().is_empty());
    // The reviewer's role may not open cases (as in the API), even with a
    // valid CSRF token of their own.
    let rev_page = env
        .visit(Method::GET, "/ui/search", &[&rev], &[], None)
        .await;
    let r = env
        .visit(
            Method::POST,
            "/ui/cases",
            &[&rev],
            &[],
            Some(&format!("csrf={}&title=x", csrf_of(&rev_page.text()))),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(governance::cases(&env.ledger).unwrap().is_empty());
    // Another session's CSRF token is not this one's.
    let r = env
        .visit(
            Method::POST,
            "/ui/cases",
            &[&sup],
            &[],
            Some(&format!("csrf={}&title=x", csrf_of(&rev_page.text()))),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The supervisor opens a case with a hostile title: shown as text.
    let r = env
        .visit(
            Method::POST,
            "/ui/cases",
            &[&sup],
            &[],
            Some(&format!("csrf={sup_csrf}&title={}", url_encode(hostile))),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let page = env
        .visit(Method::GET, "/ui/cases", &[&rev], &[], None)
        .await;
    assert!(page
        .text()
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!page.text().contains("<script>alert"));
    assert!(!page.text().contains("<img"));

    // As in the API: the auditor reaches no footage, queue or holds; the
    // reviewer no queue or holds.
    for (who, uri) in [
        (&aud, "/ui/segments/sg-x/media"),
        (&aud, "/ui/queue"),
        (&aud, "/ui/holds"),
        (&rev, "/ui/queue"),
        (&rev, "/ui/holds"),
    ] {
        let r = env.visit(Method::GET, uri, &[who], &[], None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    let r = env
        .visit(Method::GET, "/ui/audit", &[&aud], &[], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("/ui/static/audit.js"));
    env.ledger.close().await;
}

#[tokio::test]
async fn language_from_accept_language_query_and_cookie() {
    let env = TestLedger::new().await;
    let zh = env
        .visit(
            Method::GET,
            "/ui/login",
            &[],
            &[("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")],
            None,
        )
        .await;
    assert!(zh.text().contains("<html lang=\"zh-CN\">"));
    assert!(zh.text().contains("登录"));
    let en = env
        .visit(
            Method::GET,
            "/ui/login",
            &[],
            &[("accept-language", "en-GB")],
            None,
        )
        .await;
    assert!(en.text().contains("<html lang=\"en\">"));
    let chosen = env
        .visit(
            Method::GET,
            "/ui/login?lang=zh-CN",
            &[],
            &[("accept-language", "en")],
            None,
        )
        .await;
    assert!(chosen.text().contains("<html lang=\"zh-CN\">"));
    let lang = pair(&chosen.cookie("custos_lang").unwrap());
    let again = env
        .visit(
            Method::GET,
            "/ui/login",
            &[&lang],
            &[("accept-language", "en")],
            None,
        )
        .await;
    assert!(again.text().contains("<html lang=\"zh-CN\">"));
    let js = env
        .visit(Method::GET, "/ui/static/audit.js", &[], &[], None)
        .await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(!js.text().contains("innerHTML"));
    env.ledger.close().await;
}

#[tokio::test]
async fn revoking_a_token_ends_its_console_sessions_at_once() {
    let env = TestLedger::new().await;
    let rev = env
        .sign_in(env.token(Role::Reviewer))
        .await
        .ok()
        .expect("signed in");
    let aud = env
        .sign_in(env.token(Role::Auditor))
        .await
        .ok()
        .expect("signed in");
    for session in [&rev, &aud] {
        let page = env
            .visit(Method::GET, "/ui/search", &[session], &[], None)
            .await;
        assert_eq!(page.status, StatusCode::OK);
    }
    let bearer = format!("Bearer {}", env.token(Role::Admin));
    let r = env
        .visit(
            Method::POST,
            "/v1/tokens/reviewer-1/revoke",
            &[],
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The reviewer's session ends on its very next request; the auditor's
    // goes on.
    let r = env
        .visit(Method::GET, "/ui/search", &[&rev], &[], None)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/ui/login");
    let page = env
        .visit(Method::GET, "/ui/search", &[&aud], &[], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // And the revoked token cannot sign in again.
    assert!(env.sign_in(env.token(Role::Reviewer)).await.is_err());
    env.ledger.close().await;
}
