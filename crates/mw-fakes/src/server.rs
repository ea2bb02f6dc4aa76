//! Minimal hyper-based HTTP/1 server shared by both fakes. A handler may answer or "reset" (close
//! the connection without writing any response).

use std::{future::Future, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle, task::JoinSet};

/// Request bodies above this size are answered 413 without being handled.
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// One fully read request.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub too_large: bool,
}

/// What a handler wants done with the connection.
pub(crate) enum Outcome {
    Respond(Response<Full<Bytes>>),
    Reset,
}

pub(crate) type Handler =
    Arc<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// A running server; aborting the accept task drops (and so aborts) every connection task.
pub(crate) struct Server {
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1:0`.
    pub async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    /// Starts serving `listener` with `handler`.
    pub fn spawn(listener: TcpListener, handler: Handler) -> Self {
        Self {
            task: Some(tokio::spawn(accept_loop(listener, handler))),
        }
    }

    /// Stops accepting and aborts in-flight connections.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| serve_one(handler.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_one(
    handler: Handler,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, io::Error> {
    let (parts, body) = req.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => (Bytes::new(), true),
        Err(e) => return Err(io::Error::other(e.to_string())),
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        too_large,
    };
    match handler(req).await {
        Outcome::Respond(resp) => Ok(resp),
        // Returning an error makes hyper drop the connection without writing anything.
        Outcome::Reset => Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "fault: reset",
        )),
    }
}

/// A response with the given status, body and content type.
pub(crate) fn response(
    status: u16,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    response(status, value.to_string(), "application/json")
}

/// Sets a header, silently skipping values that are not valid header values.
pub(crate) fn set_header(resp: &mut Response<Full<Bytes>>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set); invalid escapes are kept.
pub(crate) fn pct_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into decoded key/value pairs.
pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k, true), pct_decode(v, true))
        })
        .collect()
}

/// Request headers as `(lowercase name, lossy value)` pairs.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
