//! Accepting connections and serving HTTP/1.1 on them, with the
//! connection-level limits of [`HttpLimits`].
//!
//! `axum::serve` offers no header timeout, header limits or connection
//! limit, so connections are served here with hyper's own builder: a client
//! that trickles its headers (slowloris) is cut off after the header
//! timeout, oversized headers get hyper's 431, and beyond `max_connections`
//! a new connection is answered 503 at once and closed, instead of taking a
//! file descriptor and a task for as long as the client likes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::Error;
use crate::request_limits::HttpLimits;

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// connections finish the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes);
    let builder = Arc::new(builder);
    let permits = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let busy = Arc::new(busy_answer(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
        };
        // Answers are small and written at once; without TCP_NODELAY,
        // Nagle's algorithm meeting the client's delayed ACK can hold one
        // back for tens of milliseconds.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse(stream, Arc::clone(&busy)));
            continue;
        };
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                // Timeouts, malformed or oversized requests, resets.
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection returns its slot when it ends.
    let _ = slots.acquire_many(permits).await;
    Ok(())
}

/// The whole answer to a connection beyond the limit, in the envelope.
fn busy_answer(limit: usize) -> Vec<u8> {
    let error = Error::TooManyConnections { limit };
    let (status, code) = error.status_and_code();
    let body = serde_json::json!({
        "code": code,
        "msg": error.to_string(),
        "data": null,
        "traceId": null,
    })
    .to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers 503 without reading the request, and closes. Bounded, so a
/// client that does not read cannot hold this task.
async fn refuse(mut stream: TcpStream, answer: Arc<Vec<u8>>) {
    tracing::debug!("connection refused: at the connection limit");
    let write = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A failed accept: the client gave up (go on), or the process is out of
/// file descriptors or memory (wait a moment rather than spin).
async fn pause_after_accept_error(e: std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionRefused | K::ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn the_busy_answer_is_a_complete_503() {
        let answer = String::from_utf8(busy_answer(7)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(envelope["code"], 50307);
        assert!(envelope["msg"].as_str().unwrap().contains("7"));
    }

    #[test]
    fn a_busy_answer_is_an_error_response_too() {
        // The same error through axum, should it ever be raised in a handler.
        let response = Error::TooManyConnections { limit: 1 }.into_response();
        assert_eq!(response.status(), 503);
    }
}
