//! The SSRF guard where it matters: the real sender, against a listener on loopback that
//! counts connections. Every refused URL must fail before any connection is made.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use paysession_app::ports::WebhookSender;
use paysession_domain::webhook::UrlPolicy;
use paysession_outbound::GuardedSender;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const STRICT: UrlPolicy = UrlPolicy { allow_private: false };

/// A loopback HTTP listener answering every request with `response`, counting connections.
async fn listener(response: &'static str, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn refused_addresses_are_never_connected() {
    let (port, count) = listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", Duration::ZERO).await;
    let sender = GuardedSender::new(STRICT);
    let urls = [
        format!("https://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
        format!("https://2130706433:{port}/"),
        format!("https://0177.0.0.1:{port}/"),
        format!("https://0x7f000001:{port}/"),
        format!("https://127.1:{port}/"),
        format!("https://[::1]:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
        format!("https://[::ffff:7f00:1]:{port}/"),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "https://100.64.0.1/".to_string(),
        "https://10.0.0.1/".to_string(),
        "https://192.168.0.1/".to_string(),
        "https://0.0.0.0/".to_string(),
        "https://metadata.google.internal/".to_string(),
    ];
    for url in &urls {
        let r = sender.send(url, &[], "{}").await;
        assert!(r.status_code.is_none(), "{url} was called");
        assert!(r.error.as_deref().is_some_and(|e| e.starts_with("refused")), "{url}: {:?}", r.error);
    }
    assert_eq!(count.load(Ordering::SeqCst), 0, "no connection reached the loopback listener");
}

#[tokio::test]
async fn hostnames_are_checked_on_every_resolved_address() {
    use reqwest::dns::Resolve;
    let resolver = paysession_outbound::GuardedResolver::new(STRICT);
    // `localhost` resolves (from /etc/hosts) to loopback addresses only.
    let refused = resolver.resolve("localhost".parse().unwrap()).await.err().expect("refused");
    assert!(refused.to_string().contains("refused: localhost resolves to"), "{refused}");
    let local = paysession_outbound::GuardedResolver::new(UrlPolicy { allow_private: true });
    assert!(local.resolve("localhost".parse().unwrap()).await.is_ok());
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_receivers_time_out() {
    let (target_port, target_hits) = listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", Duration::ZERO).await;
    let redirect: &'static str =
        Box::leak(format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target_port}/\r\ncontent-length: 0\r\n\r\n").into_boxed_str());
    let (port, _) = listener(redirect, Duration::ZERO).await;
    let local = GuardedSender::new(UrlPolicy { allow_private: true });
    let r = local.send(&format!("http://127.0.0.1:{port}/"), &[], "{}").await;
    assert_eq!(r.status_code, Some(302));
    assert_eq!(target_hits.load(Ordering::SeqCst), 0, "the redirect target was not called");

    let (slow, _) = listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", Duration::from_secs(5)).await;
    let impatient = GuardedSender::with_timeout(UrlPolicy { allow_private: true }, Duration::from_millis(300));
    let r = impatient.send(&format!("http://127.0.0.1:{slow}/"), &[], "{}").await;
    assert_eq!(r.status_code, None);
    assert_eq!(r.error.as_deref(), Some("timed out"));
}
