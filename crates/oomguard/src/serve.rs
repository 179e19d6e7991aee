//! The Prometheus endpoint: `GET /metrics` over plain HTTP/1.1, served by a
//! single-threaded tokio runtime on a thread of its own, so slow clients cost
//! a task each, never a thread, and never hold up the sampling loop.
//!
//! Limits: at most [`MAX_CONNECTIONS`] open connections (more are closed at
//! once), a request head of at most [`MAX_HEAD`] bytes read within
//! [`HEAD_TIMEOUT`] (else 431 or a closed connection), a response written
//! within [`WRITE_TIMEOUT`]. Methods other than GET and HEAD get 405; before
//! the first sample `/metrics` answers 503, not an empty 200.

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Open connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The body `/metrics` serves: `None` until the first sample.
#[derive(Clone, Default)]
pub struct Body(Arc<Mutex<Option<String>>>);

impl Body {
    /// Replaces what is served.
    pub fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Listens on `addr` and serves `body` from a background thread. Returns the
/// bound address (port 0 picks a free one).
pub fn spawn(addr: &str, body: Body) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("--serve {addr}: cannot listen"))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("--serve: cannot start the HTTP runtime")?;
    std::thread::Builder::new()
        .name("oomguard-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => accept_loop(listener, body).await,
                    Err(e) => eprintln!("oomguard: --serve: {e}"),
                }
            })
        })
        .context("--serve: cannot start the HTTP thread")?;
    Ok(local)
}

async fn accept_loop(listener: TcpListener, body: Body) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(_) => {
                // Out of file descriptors or a connection reset before
                // accept: wait a moment and go on serving.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let body = body.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &body).await;
            drop(slot);
        });
    }
}

/// Reads the request head: `Ok(None)` when it is larger than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// Status line and body for a request head.
pub fn respond(head: Option<&[u8]>, body: Option<String>) -> (u16, &'static str, String) {
    let Some(head) = head else {
        return (
            431,
            "Request Header Fields Too Large",
            "request head too large\n".into(),
        );
    };
    let text = String::from_utf8_lossy(head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method.is_empty() || path.is_empty() {
        return (400, "Bad Request", "bad request\n".into());
    }
    if method != "GET" && method != "HEAD" {
        return (405, "Method Not Allowed", "only GET and HEAD\n".into());
    }
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/metrics" => match body {
            Some(b) => (200, "OK", b),
            None => (
                503,
                "Service Unavailable",
                "no sample yet: the first sample of the GPUs has not completed\n".into(),
            ),
        },
        "/" => (200, "OK", "oomguard watch: metrics at /metrics\n".into()),
        _ => (
            404,
            "Not Found",
            "not found: oomguard serves /metrics\n".into(),
        ),
    }
}

async fn answer(mut stream: TcpStream, body: &Body) -> std::io::Result<()> {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        // A client that sends nothing in time, or goes away: close.
        _ => return Ok(()),
    };
    let is_head = head.as_deref().is_some_and(|h| h.starts_with(b"HEAD "));
    let (code, reason, text) = respond(head.as_deref(), body.get());
    let content_type = if code == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(text.as_bytes());
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_paths_and_limits() {
        let body = || Some("oomguard_up 1\n".to_string());
        assert_eq!(
            respond(Some(b"GET /metrics HTTP/1.1\r\n\r\n"), body()).0,
            200
        );
        assert_eq!(
            respond(Some(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), body()).0,
            200
        );
        assert_eq!(
            respond(Some(b"HEAD /metrics HTTP/1.1\r\n\r\n"), body()).0,
            200
        );
        assert_eq!(
            respond(Some(b"POST /metrics HTTP/1.1\r\n\r\n"), body()).0,
            405
        );
        assert_eq!(respond(Some(b"GET /other HTTP/1.1\r\n\r\n"), body()).0, 404);
        assert_eq!(respond(Some(b"\r\n\r\n"), body()).0, 400);
        assert_eq!(respond(None, body()).0, 431);
        let (code, _, text) = respond(Some(b"GET /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(code, 503);
        assert!(text.contains("no sample yet"));
    }
}
