//! The JSON error shape for the rejections hyper makes itself. A request
//! hyper cannot parse (a bad request line, headers past its limit, a URI
//! too long) never reaches the router: hyper answers it with a bare status
//! line. Every connection's writes pass through [`JsonErrors`], which
//! replaces such an answer — an error status written before any request
//! reached the router — with the same status and the `{"error": ...}`
//! body every other rejection has.
//!
//! What it cannot see: a malformed request that follows a well-formed one
//! on the same keep-alive connection still gets hyper's bare status.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes of hyper's own answer held while deciding (its error answers
/// are a status line and two short headers).
const MAX_HEAD: usize = 1024;

/// A connection whose first answer, if hyper made it, gets a JSON body.
#[derive(Debug)]
pub(crate) struct JsonErrors<IO> {
    io: IO,
    /// Set once a request reached the router: from then on, everything
    /// passes through.
    served: Arc<AtomicBool>,
    /// The first answer's bytes, held until its head is complete.
    head: Vec<u8>,
    /// What goes out before anything else is written.
    out: Vec<u8>,
    decided: bool,
}

impl<IO> JsonErrors<IO> {
    /// Wraps `io`; the router sets `served` when a request reaches it.
    pub(crate) fn new(io: IO, served: Arc<AtomicBool>) -> Self {
        JsonErrors {
            io,
            served,
            head: Vec::new(),
            out: Vec::new(),
            decided: false,
        }
    }

    /// The bytes to send for the held head, once it is complete (or as
    /// large as it may grow).
    fn decide(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.decided = true;
        self.out = rewrite(&head).unwrap_or(head);
    }
}

/// Hyper's error answer `head`, with a JSON body; `None` for anything else.
pub(crate) fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next()?, parts.next()?);
    let reason = parts.next().unwrap_or("");
    let status: u16 = code.parse().ok()?;
    let empty = rest
        .lines()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    if !version.starts_with("HTTP/1.") || status < 400 || !empty || !text.ends_with("\r\n\r\n") {
        return None;
    }
    let error = match status {
        400 => "malformed request".to_owned(),
        414 => "request URI too long".to_owned(),
        431 => "request headers too large".to_owned(),
        _ => reason.to_ascii_lowercase(),
    };
    let body = serde_json::json!({ "error": error }).to_string();
    Some(
        format!(
            "{version} {status} {reason}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: AsyncWrite + Unpin> JsonErrors<IO> {
    /// Writes out what is pending; `Ready` once it is all written.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for JsonErrors<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonErrors<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.decided && this.served.load(Relaxed) && this.head.is_empty() {
            this.decided = true;
        }
        if this.decided {
            if this.drain(cx)?.is_pending() {
                return Poll::Pending;
            }
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.head.extend_from_slice(buf);
        if this.head.windows(4).any(|w| w == b"\r\n\r\n") || this.head.len() >= MAX_HEAD {
            this.decide();
            // Accepted: it goes out with the next write or the flush.
            let _ = this.drain(cx)?;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.decided && !this.head.is_empty() {
            this.decide();
        }
        if this.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.as_mut().poll_flush(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_bare_error_answers_are_rewritten() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite(bare).expect("rewritten")).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let body = out.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"], "request headers too large");
        assert!(out.contains(&format!("content-length: {}", body.len())));
        // Answers with a body, successes and partial heads pass.
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 17\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }

    #[tokio::test]
    async fn a_first_answer_from_hyper_goes_out_as_json_a_served_one_as_is() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for served in [false, true] {
            let (a, mut b) = tokio::io::duplex(4096);
            let mut w = JsonErrors::new(a, Arc::new(AtomicBool::new(served)));
            w.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("write");
            w.shutdown().await.expect("shutdown");
            drop(w);
            let mut got = String::new();
            b.read_to_string(&mut got).await.expect("read");
            assert_eq!(got.contains("\"error\""), !served, "{got}");
        }
    }
}
