//! A loopback stand-in for Stripe's API (PaymentIntents, Customers, Refunds, search), enough
//! to run the connector's every flow offline: it records every request (method, path,
//! headers, form body), replays answers by `Idempotency-Key` as Stripe does, behaves by
//! Stripe's test card numbers, serves a 3-D Secure page that sends the customer back to the
//! `return_url`, and injects scripted faults (an error status, or an answer lost after the
//! request was applied).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The raw (form-encoded) body.
    pub body: String,
}

impl Recorded {
    /// The decoded form parameters, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A fault for the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status and error body without acting.
    Status(u16, Value),
    /// Act, then drop the connection without answering.
    LoseAnswer,
    /// Act, then hold the answer for 5 s (longer than the tests' client timeout).
    Timeout,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    intents: BTreeMap<String, Value>,
    refunds: BTreeMap<String, Value>,
    /// Payment methods that decline off-session.
    declining: Vec<String>,
    replays: BTreeMap<String, (u16, Value)>,
    faults: VecDeque<(String, Fault)>,
    seq: u64,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_standin{:06}", self.seq)
    }
}

pub struct StripeStandIn {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(kind: &str, code: &str, decline: Option<&str>, pi: Option<&Value>) -> Value {
    let mut e = json!({"type": kind, "code": code, "message": format!("stand-in: {code}")});
    if let Some(d) = decline {
        e["decline_code"] = json!(d);
    }
    if let Some(pi) = pi {
        e["payment_intent"] = pi.clone();
    }
    json!({ "error": e })
}

impl StripeStandIn {
    pub async fn start() -> StripeStandIn {
        let state = Arc::new(Mutex::new(State::default()));
        // The 3-D Secure page's URL names the stand-in: known once it listens.
        let base = Arc::new(std::sync::OnceLock::<String>::new());
        let (s2, b2) = (state.clone(), base.clone());
        let (url, task) = crate::loopback::serve(move |req| {
            let (state, base) = (s2.clone(), b2.clone());
            async move {
                let base = base.get().cloned().unwrap_or_default();
                serve(&state, &base, req).await.ok_or_else(|| std::io::Error::other("stand-in: answer lost"))
            }
        })
        .await;
        base.set(url.clone()).expect("set once");
        StripeStandIn { url, state, task }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests to `path` (exact path and query) received so far.
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.starts_with(path_prefix)).collect()
    }

    /// The next request whose path starts with `path_prefix` meets `fault`.
    pub fn fault_next(&self, path_prefix: &str, fault: Fault) {
        self.state.lock().unwrap().faults.push_back((path_prefix.to_string(), fault));
    }

    pub fn intent(&self, id: &str) -> Option<Value> {
        self.state.lock().unwrap().intents.get(id).cloned()
    }

    /// The PaymentIntent made for our payment `payment_id`.
    pub fn intent_of(&self, payment_id: &str) -> Option<Value> {
        self.state.lock().unwrap().intents.values().find(|pi| pi["metadata"]["paysession_payment_id"] == payment_id).cloned()
    }

    /// The Stripe refund made for our refund `refund_id`.
    pub fn refund_of(&self, refund_id: &str) -> Option<Value> {
        self.state.lock().unwrap().refunds.values().find(|r| r["metadata"]["paysession_refund_id"] == refund_id).cloned()
    }

    /// Changes a refund's state (what Stripe does later, e.g. a refund that fails), returning it.
    pub fn set_refund(&self, id: &str, status: &str, failure_reason: Option<&str>) -> Value {
        let mut st = self.state.lock().unwrap();
        let r = st.refunds.get_mut(id).expect("known refund");
        r["status"] = json!(status);
        r["failure_reason"] = json!(failure_reason);
        r.clone()
    }
}

/// The answer to one request; `None` drops the connection unanswered.
async fn serve(state: &Arc<Mutex<State>>, base: &str, req: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = String::from_utf8_lossy(&body.collect().await.map(|b| b.to_bytes()).unwrap_or_default()).into_owned();
    let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: BTreeMap<String, String> =
        parts.headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let method = parts.method.to_string();
    let recorded = Recorded { method: method.clone(), path: path.clone(), headers: headers.clone(), body: body.clone() };
    let (fault, replay) = {
        let mut st = state.lock().unwrap();
        st.requests.push(recorded.clone());
        let fault = st.faults.iter().position(|(p, _)| path.starts_with(p.as_str())).and_then(|i| st.faults.remove(i)).map(|(_, f)| f);
        let replay = headers.get("idempotency-key").and_then(|k| st.replays.get(k).cloned());
        (fault, replay)
    };
    if let Some(Fault::Status(status, body)) = &fault {
        return Some(respond(*status, body));
    }
    let (status, answer) = match replay {
        Some(stored) => stored,
        None => {
            let (status, answer) = act(state, base, &recorded);
            if let Some(key) = headers.get("idempotency-key")
                && method == "POST"
                && status != 500
            {
                state.lock().unwrap().replays.insert(key.clone(), (status, answer.clone()));
            }
            (status, answer)
        }
    };
    match fault {
        Some(Fault::LoseAnswer) => return None,
        Some(Fault::Timeout) => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    if status == 302 {
        return Some(
            Response::builder().status(302).header("location", answer.as_str().unwrap_or("/")).body(Full::new(Bytes::new())).unwrap(),
        );
    }
    Some(respond(status, &answer))
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder().status(status).header("content-type", "application/json").body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn form_map(body: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

fn metadata(form: &BTreeMap<String, String>) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in form {
        if let Some(key) = k.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')) {
            m.insert(key.to_string(), json!(v));
        }
    }
    Value::Object(m)
}

/// Applies one request to the stand-in's state: (status, JSON answer; a string for 302).
fn act(state: &Arc<Mutex<State>>, base: &str, r: &Recorded) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    let form = form_map(&r.body);
    let path = r.path.split('?').next().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let id = st.id("cus");
            (200, json!({"id": id, "object": "customer", "metadata": metadata(&form)}))
        }
        ("POST", ["v1", "payment_intents"]) => create_intent(&mut st, base, &form),
        ("GET", ["v1", "payment_intents", "search"]) => {
            let query = r.path.split_once('?').map(|(_, q)| form_map(q)).unwrap_or_default();
            let wanted =
                query.get("query").and_then(|q| q.rsplit(':').next()).map(|v| v.trim_matches('\'').to_string()).unwrap_or_default();
            let found: Vec<Value> =
                st.intents.values().filter(|pi| pi["metadata"]["paysession_payment_id"] == wanted.as_str()).cloned().collect();
            (200, json!({"object": "search_result", "data": found, "has_more": false}))
        }
        ("GET", ["v1", "payment_intents", id]) => match st.intents.get(*id) {
            Some(pi) => (200, pi.clone()),
            None => (404, error("invalid_request_error", "resource_missing", None, None)),
        },
        ("POST", ["v1", "payment_intents", id, "capture"]) => {
            let Some(pi) = st.intents.get_mut(*id) else { return (404, error("invalid_request_error", "resource_missing", None, None)) };
            if pi["status"] != "requires_capture" {
                return (400, error("invalid_request_error", "payment_intent_unexpected_state", None, None));
            }
            let amount = form.get("amount_to_capture").and_then(|a| a.parse::<i64>().ok()).unwrap_or(pi["amount"].as_i64().unwrap());
            pi["status"] = json!("succeeded");
            pi["amount_received"] = json!(amount);
            (200, pi.clone())
        }
        ("POST", ["v1", "payment_intents", id, "cancel"]) => {
            let Some(pi) = st.intents.get_mut(*id) else { return (404, error("invalid_request_error", "resource_missing", None, None)) };
            pi["status"] = json!("canceled");
            (200, pi.clone())
        }
        ("POST", ["v1", "refunds"]) => {
            let pi_id = form.get("payment_intent").cloned().unwrap_or_default();
            let Some(pi) = st.intents.get(&pi_id).cloned() else {
                return (404, error("invalid_request_error", "resource_missing", None, None));
            };
            if pi["status"] != "succeeded" {
                return (400, error("invalid_request_error", "charge_not_refundable", None, None));
            }
            let id = st.id("re");
            let refund = json!({
                "id": id, "object": "refund", "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok()),
                "payment_intent": pi_id, "charge": pi["latest_charge"]["id"], "status": "pending",
                "failure_reason": null, "metadata": metadata(&form), "currency": pi["currency"],
            });
            st.refunds.insert(id, refund.clone());
            (200, refund)
        }
        ("GET", ["v1", "refunds"]) => {
            let query = r.path.split_once('?').map(|(_, q)| form_map(q)).unwrap_or_default();
            let pi = query.get("payment_intent").cloned().unwrap_or_default();
            let found: Vec<Value> = st.refunds.values().filter(|r| r["payment_intent"] == pi.as_str()).cloned().collect();
            (200, json!({"object": "list", "data": found, "has_more": false}))
        }
        // The issuer's 3-D Secure page: `?result=approve|deny`, then back to the return URL.
        ("GET", ["3ds", id]) => {
            let approve = r.path.contains("result=approve");
            let Some(pi) = st.intents.get_mut(*id) else { return (404, json!({})) };
            let back = pi["next_action"]["redirect_to_url"]["return_url"].as_str().unwrap_or("/").to_string();
            complete_3ds(pi, approve);
            let sep = if back.contains('?') { '&' } else { '?' };
            (302, json!(format!("{back}{sep}payment_intent={id}")))
        }
        _ => (404, error("invalid_request_error", "resource_missing", None, None)),
    }
}

fn complete_3ds(pi: &mut Value, approve: bool) {
    pi["next_action"] = Value::Null;
    if approve {
        pi["status"] = json!(if pi["capture_method"] == "manual" { "requires_capture" } else { "succeeded" });
    } else {
        pi["status"] = json!("requires_payment_method");
        pi["last_payment_error"] = json!({"type": "card_error", "code": "payment_intent_authentication_failure"});
    }
}

fn create_intent(st: &mut State, base: &str, form: &BTreeMap<String, String>) -> (u16, Value) {
    let id = st.id("pi");
    let charge = st.id("ch");
    let amount: i64 = form.get("amount").and_then(|a| a.parse().ok()).unwrap_or(0);
    let number = form.get("payment_method_data[card][number]").cloned();
    let (payment_method, declining) = match (&number, form.get("payment_method")) {
        (Some(n), _) => {
            let pm = st.id("pm");
            (Some(pm), n == "4000000000000341")
        }
        (None, Some(pm)) => (Some(pm.clone()), st.declining.contains(pm)),
        (None, None) => (None, false),
    };
    if declining && number.is_some() {
        st.declining.push(payment_method.clone().unwrap());
    }
    let manual = form.get("capture_method").map(String::as_str) == Some("manual");
    let mut pi = json!({
        "id": id, "object": "payment_intent", "amount": amount, "currency": form.get("currency"),
        "capture_method": if manual { "manual" } else { "automatic" }, "customer": form.get("customer"),
        "payment_method": payment_method, "setup_future_usage": form.get("setup_future_usage"),
        "metadata": metadata(form), "status": "succeeded", "next_action": null, "last_payment_error": null,
        "latest_charge": {"id": charge, "object": "charge", "payment_method_details": {"card": {"network_transaction_id": format!("ntid_{charge}")}}},
    });
    let success = if manual { "requires_capture" } else { "succeeded" };
    let declined = |pi: &mut Value, code: &str, decline: Option<&str>| {
        pi["status"] = json!("requires_payment_method");
        pi["last_payment_error"] = json!({"type": "card_error", "code": code, "decline_code": decline});
    };
    let off_session = form.get("off_session").map(String::as_str) == Some("true");
    let outcome = match number.as_deref() {
        Some("4000000000000002") => Some(("card_declined", Some("generic_decline"))),
        Some("4000000000009995") => Some(("card_declined", Some("insufficient_funds"))),
        Some("4000000000000069") => Some(("expired_card", None)),
        Some("4000000000000127") => Some(("incorrect_cvc", None)),
        Some("4000000000000119") => Some(("processing_error", None)),
        // A code this connector has no mapping for.
        Some("4000000000000101") => Some(("card_decline_rate_limit_exceeded", None)),
        _ if off_session && declining => Some(("authentication_required", Some("authentication_required"))),
        _ => None,
    };
    let status = match (outcome, number.as_deref()) {
        (Some((code, decline)), _) => {
            declined(&mut pi, code, decline);
            st.intents.insert(id.clone(), pi.clone());
            return (402, error("card_error", code, decline, Some(&pi)));
        }
        (None, Some("4000002760003184")) => {
            pi["next_action"] = json!({"type": "redirect_to_url", "redirect_to_url": {
                "url": format!("{base}/3ds/{id}"), "return_url": form.get("return_url"),
            }});
            "requires_action"
        }
        _ => success,
    };
    pi["status"] = json!(status);
    st.intents.insert(id, pi.clone());
    (200, pi)
}
