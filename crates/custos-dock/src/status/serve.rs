//! The status endpoint of `custos dock run` (`[dock] status_listen`,
//! loopback by default): the station's screen at `/`, the same facts as
//! JSON at `/status` and as Prometheus text at `/metrics`, live updates of
//! the screen at `/status/events` (server-sent events), `/healthz`, and the
//! screen's two static files.
//!
//! Every route is a GET (others answer 405): nothing here changes state.
//! Every answer carries a strict Content-Security-Policy (no inline script
//! or style, nothing from elsewhere, no framing) and `no-store`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use custos_i18n::Lang;
use futures::Stream;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{page, DockStatus, StatusBoard};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often the live updates look at the board.
const EVENT_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone)]
struct Served {
    board: Arc<StatusBoard>,
    /// `[dock] status_language`, when set.
    language: Option<Lang>,
}

#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

impl Served {
    /// `?lang=`, then the setting, then the browser's language, then zh-CN.
    fn lang(&self, q: &LangQuery, headers: &HeaderMap) -> Lang {
        if let Some(l) = q.lang.as_deref().and_then(Lang::from_tag) {
            return l;
        }
        if let Some(l) = self.language {
            return l;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Lang::negotiate_or(accept, Lang::ZhCn)
    }
}

/// The router of the status endpoint (see the module documentation).
/// `language` is `[dock] status_language` (`None`: the browser's, else
/// zh-CN).
pub fn router(board: Arc<StatusBoard>, language: Option<Lang>) -> Router {
    Router::new()
        .route("/", get(screen))
        .route("/status", get(status_json))
        .route("/status/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/static/dock.css", get(css))
        .route("/static/dock.js", get(js))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Served { board, language })
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn screen(
    State(s): State<Served>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Html<String> {
    let lang = s.lang(&q, &headers);
    Html(page::page(&s.board.snapshot(), lang))
}

async fn status_json(State(s): State<Served>) -> Json<DockStatus> {
    Json(s.board.snapshot())
}

async fn metrics(State(s): State<Served>) -> impl IntoResponse {
    let body = s.board.metrics().render(&s.board.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The `#board` fragment whenever it changes (and a keep-alive comment
/// between), for `dock.js` to swap in.
async fn events(
    State(s): State<Served>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let lang = s.lang(&q, &headers);
    let board = s.board.clone();
    let stream = futures::stream::unfold(String::new(), move |last| {
        let board = board.clone();
        async move {
            let mut first = last.is_empty();
            loop {
                if !first {
                    tokio::time::sleep(EVENT_EVERY).await;
                }
                first = false;
                let html = page::board(&board.snapshot(), lang);
                if html != last {
                    let event = Event::default().event("board").data(html.clone());
                    return Some((Ok(event), html));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/dock.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/dock.js"),
    )
}

/// Serve the status endpoint on `listen` until `stop`; returns the bound
/// address once listening.
pub async fn serve(
    board: Arc<StatusBoard>,
    language: Option<Lang>,
    listen: &str,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(board, language);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the status endpoint stopped");
        }
    });
    Ok((addr, task))
}
