"""Real ids for schemathesis, and what its run reached.

As a module (SCHEMATHESIS_HOOKS=schemathesis_hooks): path parameters and the sandbox code's
`session_id` are drawn from what schemathesis generates *or* from ids that exist, so that
the operations on one session, endpoint, event or mandate reach their 2xx paths and their
state errors (409), not only 404.

As a script:
  seed BASE TOKEN OUT.json   creates those objects through the API and the hosted page
  coverage CASSETTE SPEC     prints, per operation, the status codes schemathesis saw
"""

import json
import os
import re
import sys
import urllib.parse
import urllib.request

SEEDED_ENV = "PAYSESSION_SEEDED_IDS"
SHOP = "https://shop.example"


def _seeded():
    path = os.environ.get(SEEDED_ENV)
    return json.load(open(path)) if path else {}


if __name__ != "__main__":
    import schemathesis
    from hypothesis import strategies as st

    SEEDED = _seeded()

    @schemathesis.hook
    def flatmap_path_parameters(ctx, path_parameters):
        real = SEEDED.get("paths", {}).get(ctx.operation.path if ctx.operation else "", {})
        if not real or not path_parameters:
            return st.just(path_parameters)
        seeded = {**path_parameters, **{k: v for k, v in real.items() if k in path_parameters}}
        return st.sampled_from([path_parameters, seeded])

    @schemathesis.hook
    def map_body(ctx, body):
        # The test clock moves at most a second per fuzzed advance, so the seeded objects
        # stay live (not expired) for the whole run.
        if ctx.operation and ctx.operation.path == "/v1/test_clock/advance" and isinstance(body, dict) and isinstance(body.get("seconds"), int):
            return {**body, "seconds": max(1, min(body["seconds"], 1))}
        return body

    REFERENCES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=12, max_size=40)

    @schemathesis.hook
    def flatmap_body(ctx, body):
        # Generated creates rarely pass every rule (an active currency, a consistent
        # total): half of them are replaced by a valid one with a fresh reference. Half of
        # the refunds name the seeded payment that has money left to refund.
        op = (ctx.operation.method.upper(), ctx.operation.path) if ctx.operation else None
        if op == ("POST", "/v1/refunds") and SEEDED.get("refundable"):
            return st.one_of(st.just(body), st.just({"payment_id": SEEDED["refundable"], "amount": 1}))
        if op != ("POST", "/v1/payment_sessions"):
            return st.just(body)
        valid = REFERENCES.map(lambda ref: {"amount": 1050, "currency": "EUR", "customer_id": "cus_fuzz", "reference": "f-" + ref})
        return st.one_of(st.just(body), valid)

    @schemathesis.hook
    def flatmap_query(ctx, query):
        real = SEEDED.get("queries", {}).get(ctx.operation.path if ctx.operation else "", {})
        if not real or not query:
            return st.just(query)
        return st.sampled_from([query, {**query, **real}])


def _call(base, token, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req) as r:
        return json.load(r)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _pay_on_page(base, url):
    """Pays a session on its hosted page with the sandbox card, launched from the shop."""
    opener = urllib.request.build_opener(_NoRedirect)
    page = opener.open(urllib.request.Request(url, headers={"Referer": f"{SHOP}/checkout"})).read().decode()
    field = lambda name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": field("csrf"), "v": field("v"), "card_number": "4242424242424242", "expiry": "12/30", "cvc": "123"})
    try:
        opener.open(urllib.request.Request(url + "/card", data=form.encode(), method="POST"))
    except urllib.error.HTTPError as e:
        if e.code != 303:
            raise


def seed(base, token, out):
    def session(ref, customer="cus_fuzz", **extra):
        body = {"amount": 1050, "currency": "EUR", "customer_id": customer, "reference": ref, "customer": {"email": "fuzz@example.com"}}
        return _call(base, token, "POST", "/v1/payment_sessions", {**body, **extra})

    plain, cancel, expire = session("fuzz-plain"), session("fuzz-cancel"), session("fuzz-expire")
    unconfirmed = session("fuzz-unconfirmed", auto_confirm=False)
    deposit, qr, page = session("fuzz-va"), session("fuzz-qr"), session("fuzz-page")

    # A customer each: one customer's mandates share the card saved for it, and detaching
    # that card would revoke them all.
    def mandate(ref):
        first = session(ref, customer=f"cus_{ref}", allowed_domains=[SHOP], session_type="first_in_series", mandate={"type": "on_demand", "max_amount": 5000})
        _pay_on_page(base, first["url"])
        paid = _call(base, token, "GET", f"/v1/payment_sessions/{first['id']}")
        return paid["mandate_id"], paid["payment_method_id"]

    # One object per operation that changes it, so each reaches its 2xx once before the
    # others' changes could put it in a state that refuses (409).
    (to_read, _), (to_revoke, _), (to_suspend, _), (to_resume, _), (_, to_detach) = [mandate(f"fuzz-first-{i}") for i in range(5)]
    detach_customer = "cus_fuzz-first-4"
    _call(base, token, "POST", f"/v1/mandates/{to_resume}/suspend", {})
    # Payments: paid (to read and refund), authorised (to capture, to void), and a bank
    # payment whose refunds wait for action (to cancel, to complete).
    def paid(ref, **extra):
        s = session(ref, allowed_domains=[SHOP], **extra)
        _pay_on_page(base, s["url"])
        return _call(base, token, "GET", f"/v1/payment_sessions/{s['id']}")["payments"][0]["id"]

    refundable, to_capture, to_void = paid("fuzz-paid", amount=100000), paid("fuzz-capture", capture_method="manual"), paid("fuzz-void", capture_method="manual")
    bank = session("fuzz-bank", mode="api", payment_methods=["virtual_account"])
    _call(base, token, "POST", f"/sandbox/virtual_accounts/{bank['instructions']['virtual_account']['account_number']}/deposits", {"amount": 1050})
    bank_payment = _call(base, token, "GET", f"/v1/payments?session_id={bank['id']}")["data"][0]["id"]
    refund_of = lambda key, amount: _call(base, token, "POST", "/v1/refunds", {"payment_id": bank_payment, "amount": amount}, {"Idempotency-Key": key})["id"]
    to_cancel_refund, to_complete_refund = refund_of("fuzz-r1", 500), refund_of("fuzz-r2", 500)
    endpoint = _call(base, token, "POST", "/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]})
    to_delete = _call(base, token, "POST", "/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/gone", "events": ["*"]})
    event = _call(base, token, "GET", "/v1/events?limit=1")["data"][0]["id"]
    token_of = lambda s: s["url"].rsplit("/pay/", 1)[1]
    seeded = {
        "paths": {
            "/v1/payment_sessions/{id}": {"id": plain["id"]},
            "/v1/payment_sessions/{id}/events": {"id": plain["id"]},
            "/v1/payment_sessions/{id}/cancel": {"id": cancel["id"]},
            "/v1/payment_sessions/{id}/expire": {"id": expire["id"]},
            "/v1/payment_sessions/{id}/confirm": {"id": unconfirmed["id"]},
            "/pay/{token}": {"token": token_of(page)},
            "/pay/{token}/card": {"token": token_of(page)},
            "/pay/{token}/start": {"token": token_of(page)},
            "/pay/{token}/otp": {"token": token_of(page)},
            "/sandbox/virtual_accounts/{number}/deposits": {"number": deposit["instructions"]["virtual_account"]["account_number"]},
            "/sandbox/qr/{payload}/pay": {"payload": qr["instructions"]["qr"]["payload_id"]},
            "/v1/webhook_endpoints/{id}": {"id": to_delete["id"]},
            "/v1/webhook_endpoints/{id}/rotate_secret": {"id": endpoint["id"]},
            "/v1/webhook_endpoints/{id}/deliveries": {"id": endpoint["id"]},
            "/v1/events/{id}": {"id": event},
            "/v1/events/{id}/redeliver": {"id": event},
            "/v1/mandates/{id}": {"id": to_read},
            "/v1/mandates/{id}/revoke": {"id": to_revoke},
            "/v1/mandates/{id}/suspend": {"id": to_suspend},
            "/v1/mandates/{id}/resume": {"id": to_resume},
            "/v1/customers/{customer_id}/payment_methods": {"customer_id": "cus_fuzz"},
            "/v1/customers/{customer_id}/payment_methods/{pm_id}": {"customer_id": detach_customer, "pm_id": to_detach},
            "/v1/payments/{id}": {"id": refundable},
            "/v1/payments/{id}/capture": {"id": to_capture},
            "/v1/payments/{id}/cancel": {"id": to_void},
            "/v1/refunds/{id}": {"id": to_complete_refund},
            "/v1/refunds/{id}/cancel": {"id": to_cancel_refund},
            "/sandbox/refunds/{id}/complete": {"id": to_complete_refund},
            "/sandbox/processor_calls/{id}": {"id": refundable},
        },
        "queries": {
            "/sandbox/otp": {"session_id": page["id"]},
            "/v1/payments": {"session_id": bank["id"]},
            "/v1/refunds": {"payment_id": bank_payment},
        },
        "refundable": refundable,
    }
    json.dump(seeded, open(out, "w"), indent=1)
    print(f"seeded: {len(seeded['paths']) + len(seeded['queries'])} operations get real ids (sessions, payments, refunds, mandates and a card, endpoints, an event)")


def coverage(cassette, spec):
    """Status codes per operation, from the VCR cassette of the run."""
    import yaml

    paths = json.load(open(spec))["paths"]
    matchers = []
    for template, ops in paths.items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        matchers.append((re.compile(f"^{pattern}$"), template, [m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")]))
    seen = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for interaction in yaml.load(open(cassette), Loader=loader)["http_interactions"]:
        req = interaction["request"]
        path = urllib.parse.urlsplit(req["uri"]).path
        status = int(interaction["response"]["status"]["code"])
        for rx, template, methods in matchers:
            if rx.match(path) and req["method"] in methods:
                seen.setdefault(f"{req['method']} {template}", set()).add(status)
                break
    every = [f"{m} {t}" for _, t, ms in matchers for m in ms]
    width = max(len(op) for op in every)
    reached = 0
    print("status codes per operation (schemathesis run):")
    for op in every:
        codes = sorted(seen.get(op, ()))
        ok = any(200 <= c < 300 for c in codes)
        reached += ok
        print(f"  {op:<{width}}  {'2xx' if ok else '   '}  {' '.join(map(str, codes)) or 'not called'}")
    print(f"operations reaching a 2xx answer: {reached} of {len(every)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        seed(*sys.argv[2:5])
    elif sys.argv[1:2] == ["coverage"]:
        coverage(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
