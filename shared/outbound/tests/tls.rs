//! The sender over HTTPS, as receivers run in production: a rustls receiver on loopback
//! with a certificate made for this run. It must deliver to a receiver it trusts and refuse
//! one it does not (unknown issuer, wrong name) before any byte of the event is sent.

use std::sync::{Arc, Mutex};

use paysession_app::ports::WebhookSender;
use paysession_domain::webhook::UrlPolicy;
use paysession_outbound::GuardedSender;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LOOPBACK: UrlPolicy = UrlPolicy { allow_private: true };

/// What the receiver saw on each connection: the request, or why the handshake failed.
#[derive(Debug, Clone)]
enum Seen {
    Request { tls: String, text: String },
    HandshakeFailed(String),
}

struct Receiver {
    port: u16,
    certificate: CertificateDer<'static>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// An HTTPS receiver whose self-signed certificate names `names`, answering 204.
async fn receiver(names: &[&str]) -> Receiver {
    let issued = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let certificate = issued.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(sock).await {
                    Ok(tls) => tls,
                    Err(e) => return log.lock().unwrap().push(Seen::HandshakeFailed(e.to_string())),
                };
                let version = format!("{:?}", tls.get_ref().1.protocol_version());
                let text = read_request(&mut tls).await;
                log.lock().unwrap().push(Seen::Request { tls: version, text });
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Receiver { port, certificate, seen }
}

/// Reads one request: the head, then as many body bytes as `content-length` says.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8(buf).unwrap()
}

fn seen(r: &Receiver) -> Vec<Seen> {
    r.seen.lock().unwrap().clone()
}

/// The receiver's side of a refused handshake, once it has seen the client's alert.
async fn handshake_failure(r: &Receiver) -> String {
    for _ in 0..200 {
        match seen(r).as_slice() {
            [] => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            [Seen::HandshakeFailed(why)] => return why.clone(),
            other => panic!("the handshake should fail and nothing else reach the receiver: {other:?}"),
        }
    }
    panic!("the receiver saw no connection")
}

#[tokio::test]
async fn delivers_over_tls_to_a_receiver_it_trusts() {
    let r = receiver(&["localhost"]).await;
    let sender = GuardedSender::new(LOOPBACK).trusting([r.certificate.clone()]);
    let body = r#"{"id":"evt_1","type":"payment_session.completed"}"#;
    let headers = [("webhook-id", "evt_1".to_string()), ("content-type", "application/json".to_string())];
    let result = sender.send(&format!("https://localhost:{}/hooks", r.port), &headers, body).await;
    assert_eq!(result.status_code, Some(204), "{:?}", result.error);
    assert_eq!(result.error, None);

    let seen = seen(&r);
    let [Seen::Request { tls, text }] = seen.as_slice() else { panic!("one request expected: {seen:?}") };
    assert_eq!(tls, "Some(TLSv1_3)", "the safe defaults negotiate TLS 1.3");
    assert!(text.starts_with("POST /hooks HTTP/1.1\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\nwebhook-id: evt_1\r\n"), "{text}");
    assert!(text.ends_with(&format!("\r\n\r\n{body}")), "{text}");
}

#[tokio::test]
async fn refuses_a_receiver_whose_certificate_it_does_not_trust() {
    let r = receiver(&["localhost"]).await;
    // The system's roots only: a self-signed certificate chains to none of them.
    let sender = GuardedSender::new(LOOPBACK);
    let result = sender.send(&format!("https://localhost:{}/hooks", r.port), &[], "{}").await;
    assert_eq!(result.status_code, None);
    let error = result.error.expect("an attempt error");
    assert!(error.contains("invalid peer certificate: UnknownIssuer"), "{error}");
    assert_eq!(handshake_failure(&r).await, "received fatal alert: UnknownCA");
}

#[tokio::test]
async fn refuses_a_trusted_certificate_issued_for_another_name() {
    let r = receiver(&["receiver.example"]).await;
    let sender = GuardedSender::new(LOOPBACK).trusting([r.certificate.clone()]);
    let result = sender.send(&format!("https://localhost:{}/hooks", r.port), &[], "{}").await;
    assert_eq!(result.status_code, None);
    let error = result.error.expect("an attempt error");
    assert!(error.contains(r#"invalid peer certificate: certificate not valid for name "localhost""#), "{error}");
    assert_eq!(handshake_failure(&r).await, "received fatal alert: BadCertificate");
}
