//! A loopback HTTP/1 server for the tests' stand-ins and proxies: every connection served by
//! `handle`; an `Err` drops the connection unanswered (a lost answer).

use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Starts serving on a free loopback port: its base URL and the accept task (abort it to stop).
pub async fn serve<F, Fut>(handle: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, std::io::Error>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(&handle);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (url, task)
}

/// A proxy's exchange with its target: the answer, read whole.
pub struct Relayed {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

/// Sends a request on to `target` (method, path and query, headers but `host` and
/// `content-length`) and reads the answer.
pub async fn relay(client: &reqwest::Client, target: &str, parts: &http::request::Parts, body: Bytes) -> Result<Relayed, std::io::Error> {
    let mut forward = client.request(parts.method.clone(), format!("{target}{}", parts.uri));
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            forward = forward.header(k, v);
        }
    }
    let answer = forward.body(body).send().await.map_err(std::io::Error::other)?;
    let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
    Ok(Relayed { status, headers, body: answer.bytes().await.map_err(std::io::Error::other)? })
}

impl Relayed {
    /// The answer as the proxy gives it back.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                resp = resp.header(k, v);
            }
        }
        resp.body(Full::new(self.body)).expect("copied response")
    }
}

/// The AWS JSON operation a request names (`x-amz-target: DynamoDB_20120810.PutItem` → `PutItem`).
pub fn amz_operation(headers: &http::HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "unknown".into())
}
