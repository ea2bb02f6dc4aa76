//! Webhook attacks against `mw serve` (workers off, so the queue shows exactly what
//! was accepted): missing, wrong, expired, future and replayed signatures; tokens in
//! the wrong place; oversize bodies with and without a length; deeply nested JSON;
//! slow senders of headers and of bodies; a flood. None of them may enqueue anything
//! beyond the one genuine event, and the server must keep answering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mw_adapters::WebhookAuth;
use mw_cli::serve::AuthModeArg;
use mw_tests::{Server, start};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A named request: body and headers.
type Attack = (&'static str, String, Vec<(&'static str, String)>);

fn body(conversation: &str, message: &str) -> String {
    json!({"ticket_id": conversation, "message_id": message, "channel": "email",
        "text": "Hi, my mug arrived cracked. Can you help?"})
    .to_string()
}

fn queued(server: &Server) -> u64 {
    server.store.stats(chrono::Utc::now()).unwrap().depth
}

fn host(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_replayed_signatures_enqueue_nothing() {
    let server = start("attack-hmac", |s| {
        s.auth_mode = Some(AuthModeArg::Hmac);
        s.webhook_tokens = Some(vec!["s3cret".into()]);
        s.workers = Some(0);
    })
    .await;
    let genuine = body("t_sig", "m1");
    let now = chrono::Utc::now().timestamp();
    let signed = |timestamp: i64, secret: &str, payload: &str| {
        vec![
            ("x-timestamp", timestamp.to_string()),
            (
                "x-signature",
                WebhookAuth::sign(secret, timestamp, payload.as_bytes()),
            ),
        ]
    };
    let forged = body("t_sig", "m2");
    let attacks: Vec<Attack> = vec![
        ("no signature at all", forged.clone(), vec![]),
        (
            "a timestamp but no signature",
            forged.clone(),
            vec![("x-timestamp", now.to_string())],
        ),
        (
            "a signature but no timestamp",
            forged.clone(),
            vec![(
                "x-signature",
                WebhookAuth::sign("s3cret", now, forged.as_bytes()),
            )],
        ),
        (
            "signed with the wrong secret",
            forged.clone(),
            signed(now, "guess", &forged),
        ),
        (
            "an expired signature (6 min old)",
            forged.clone(),
            signed(now - 360, "s3cret", &forged),
        ),
        (
            "a signature from the future",
            forged.clone(),
            signed(now + 360, "s3cret", &forged),
        ),
        (
            "a genuine signature replayed on another body",
            forged.clone(),
            signed(now, "s3cret", &genuine),
        ),
        (
            "a genuine signature replayed with a new timestamp",
            genuine.clone(),
            vec![
                ("x-timestamp", (now + 1).to_string()),
                (
                    "x-signature",
                    WebhookAuth::sign("s3cret", now, genuine.as_bytes()),
                ),
            ],
        ),
        (
            "a garbage signature",
            forged.clone(),
            vec![
                ("x-timestamp", now.to_string()),
                ("x-signature", "sha256=zz".into()),
            ],
        ),
        (
            "the secret sent as a token",
            forged.clone(),
            vec![("x-richpanel-webhook-token", "s3cret".into())],
        ),
    ];
    for (name, payload, headers) in &attacks {
        let (status, answer) = server.post(payload, headers).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(
            answer,
            json!({"status": "unauthorized"}),
            "{name}: no detail"
        );
    }
    assert_eq!(queued(&server), 0, "no attack enqueued anything");

    // The genuine request, then the same bytes replayed within the window: the
    // replay is recognised as the same event and adds nothing.
    let headers = signed(now, "s3cret", &genuine);
    assert_eq!(server.post(&genuine, &headers).await.0, 200);
    let (status, answer) = server.post(&genuine, &headers).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(queued(&server), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_deeply_nested_bodies_are_refused_without_enqueueing() {
    let server = start("attack-body", |s| s.workers = Some(0)).await;
    let token = [("x-richpanel-webhook-token", "tok-a".to_owned())];
    // Over 32 KiB with a Content-Length.
    let huge = json!({"ticket_id": "t_big", "text": "x".repeat(40 * 1024)}).to_string();
    assert_eq!(server.post(&huge, &token).await.0, 413);
    // Over 32 KiB streamed in chunks, without a length.
    let mut stream = TcpStream::connect(host(&server)).await.unwrap();
    stream
        .write_all(b"POST /webhook/richpanel HTTP/1.1\r\nHost: x\r\nx-richpanel-webhook-token: tok-a\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..40 {
        // The server may answer and close before the last chunk: that is the point.
        if stream.write_all(b"400\r\n").await.is_err()
            || stream.write_all(&[b' '; 1024]).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Nested 5,000 deep (arrays and objects): within the size limit, refused as
    // invalid JSON, and the server stays up.
    for nested in [
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        format!(
            r#"{{"ticket_id":"t_n","x":{}1{}}}"#,
            r#"{"a":"#.repeat(5000),
            "}".repeat(5000)
        ),
    ] {
        assert!(nested.len() < 32 * 1024);
        let (status, answer) = server.post(&nested, &token).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Wrong shapes.
    for bad in [
        "null",
        "[]",
        "\"t_1\"",
        r#"{"ticket_id": {"$gt": ""}}"#,
        r#"{"ticket_id": "../../etc/passwd"}"#,
        r#"{"ticket_id": "t_1", "text": 42}"#,
    ] {
        assert_eq!(server.post(bad, &token).await.0, 400, "{bad}");
    }
    assert_eq!(queued(&server), 0);
    assert_eq!(server.post(&body("t_ok", "m1"), &token).await.0, 200);
    assert_eq!(queued(&server), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_are_cut_off_at_the_request_timeout() {
    let server = start("attack-slow", |s| {
        s.workers = Some(0);
        s.request_timeout_secs = Some(1.0);
    })
    .await;
    let payload = body("t_slow", "m1");
    // A body that never finishes: 408 after the timeout, nothing enqueued.
    let mut stream = TcpStream::connect(host(&server)).await.unwrap();
    let head = format!(
        "POST /webhook/richpanel HTTP/1.1\r\nHost: x\r\nx-richpanel-webhook-token: tok-a\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&payload.as_bytes()[..10]).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers a slow body within the timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Headers that never finish: the connection is closed after the timeout.
    let mut stream = TcpStream::connect(host(&server)).await.unwrap();
    stream
        .write_all(b"POST /webhook/richpanel HTTP/1.1\r\nHost: x\r\nx-richpanel-")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server drops a connection whose headers never finish")
        .unwrap();
    assert_eq!(queued(&server), 0);
    // Meanwhile, and afterwards, normal callers are served.
    let token = [("x-richpanel-webhook-token", "tok-a".to_owned())];
    assert_eq!(server.post(&payload, &token).await.0, 200);
    assert_eq!(queued(&server), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_throttled_and_only_answered_events_are_queued() {
    let server = Arc::new(
        start("attack-flood", |s| {
            s.workers = Some(0);
            s.rate_limit_per_sec = Some(5);
            s.rate_limit_burst = Some(10);
        })
        .await,
    );
    // An unauthenticated flood: all 401, none throttled into the queue.
    let mut unauthenticated = tokio::task::JoinSet::new();
    for index in 0..100 {
        let server = server.clone();
        unauthenticated.spawn(async move {
            server
                .post(&body("t_flood", &format!("x{index}")), &[])
                .await
                .0
        });
    }
    while let Some(status) = unauthenticated.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    // An authenticated flood of 200 distinct events at once.
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for index in 0..200 {
        let server = server.clone();
        flood.spawn(async move {
            let token = [("x-richpanel-webhook-token", "tok-a".to_owned())];
            server
                .post(&body("t_flood", &format!("m{index}")), &token)
                .await
                .0
        });
    }
    let (mut accepted, mut throttled) = (0u64, 0u64);
    while let Some(status) = flood.join_next().await {
        match status.unwrap() {
            200 => accepted += 1,
            429 => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let allowed = 10 + (5.0 * started.elapsed().as_secs_f64()).ceil() as u64;
    assert!(
        accepted <= allowed,
        "{accepted} accepted, at most {allowed}"
    );
    assert!(throttled >= 200 - allowed, "{throttled} throttled");
    assert_eq!(queued(&server), accepted, "only answered events are queued");
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}
