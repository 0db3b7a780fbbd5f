//! HTTP/1.1 written by hand on a TCP connection, for what a client library will not do: announce
//! a body and send only part of it, stall in the middle, or see whether the server hung up.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer that should come at once. Every server-side wait a test
/// relies on (the body deadline) is set far above or far below it.
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// One request on its own connection: the head is sent at once, the body when the test says.
pub struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Connects to `base` (`http://127.0.0.1:port`) and sends the request head of a POST to
    /// `path` announcing `content_length` bytes, with `headers` (`name: value`).
    pub async fn post(
        base: &str,
        path: &str,
        content_length: usize,
        headers: &[(&str, &str)],
    ) -> RawRequest {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.expect("herald listens");
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {content_length}\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        RawRequest { stream }
    }

    /// Sends part of the body. A server that already answered and closed may refuse it; that is
    /// not an error here (the answer is still read by [`RawRequest::status`]).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads the answer's status, failing the test if none comes within [`PROMPTLY`].
    pub async fn status(&mut self) -> u16 {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = find(&received, b"\r\n\r\n") {
                break end;
            }
            let n = tokio::time::timeout(PROMPTLY, self.stream.read(&mut buf))
                .await
                .expect("herald answered promptly")
                .expect("the connection reads");
            assert!(n > 0, "herald closed without answering");
            received.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).to_string();
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {head}"))
    }

    /// Whether the server hangs up within [`PROMPTLY`] (after its answer: it will not read the
    /// rest of the body). Whatever else it sends is drained.
    pub async fn hangs_up(mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(PROMPTLY, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
