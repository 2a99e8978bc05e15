#!/usr/bin/env python3
"""Lambda-level figures of the refund-create function against the `lambda_http` hello world,
in one run, with the shared instrument (../shared/perf).

A payment takes at most 20 refunds, so each round gets a payment of its own: the local
server (`paysession-local --table`, on the same DynamoDB Local table and token signing key as
the function) creates and pays a session on its hosted page, and the round's 19 invocations
(1 first + 18 warm) each refund 1 of it with a fresh Idempotency-Key: every call a real
reservation (one TransactWriteItems) and the processor's answer. Rounds alternate
hello-http, refund-create and session-create (A B C A B C; session-create, one
TransactWriteItems per call, calibrates what a DynamoDB request costs); ratios are the median
of the per-round ratios.

Usage: PERFWORK=/tmp/perfwork benches/perf/refund.py [--rounds 10] [--no-build] [--perf-dir ../shared/perf]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import api_event, common_args, sh, target_dir, workplace  # noqa: E402

TABLE = "paysession-perf-refunds"
SHOP = "https://shop.example"
WARM = 18


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def paid_payment(base, token) -> str:
    """A session of 100,000 paid by card on its hosted page; its payment id."""
    s = call(base, token, "POST", "/v1/payment_sessions",
             {"amount": 100000, "currency": "EUR", "customer_id": "cus_perf", "reference": "perf-" + secrets.token_hex(6),
              "allowed_domains": [SHOP]})
    opener = urllib.request.build_opener(NoRedirect)
    page = opener.open(urllib.request.Request(s["url"], headers={"Referer": f"{SHOP}/checkout"})).read().decode()
    field = lambda name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": field("csrf"), "v": field("v"), "card_number": "4242424242424242", "expiry": "12/30", "cvc": "123"})
    try:
        opener.open(urllib.request.Request(s["url"] + "/card", data=form.encode(), method="POST"))
    except urllib.error.HTTPError as e:
        if e.code != 303:
            raise
    return call(base, token, "GET", f"/v1/payment_sessions/{s['id']}")["payments"][0]["id"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    common_args(p)
    a = p.parse_args()
    work, perf, emulator = workplace(a)
    import ddb_local
    target = target_dir()
    if not a.no_build:
        sh(["cargo", "build", "--profile", "lambda-release", "-p", "fn-refund-create", "-p", "fn-session-create"])
        sh(["cargo", "build", "--release", "-p", "paysession-admin"])
        sh(["cargo", "build", "--release", "-p", "paysession-local", "--features", "dynamodb"])
        if not os.path.exists(os.path.join(work, "target", "release", "hello-http")):
            sh([os.path.join(perf, "build_subjects.sh"), "rust"], env={**os.environ, "PERFWORK": work})
    release, shipped = os.path.join(target, "release"), os.path.join(target, "lambda-release")

    ddb = ddb_local.DynamoDBLocal(emulator, log_path=os.path.join(work, "ddb-local.log"))
    endpoint = ddb.start()
    server = None
    try:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        aws = {"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "perf", "AWS_SECRET_ACCESS_KEY": "perf"}
        fn_env = {"PAYSESSION_TABLE": TABLE, "PAYSESSION_TOKEN_SIGNING_KEY": key,
                  "PAYSESSION_PUBLIC_URL": "https://pay.example.com", "PAYSESSION_SANDBOX": "false"}
        env = {**os.environ, **aws, **fn_env}
        sh([os.path.join(release, "paysession-admin"), "--table", TABLE, "init"], env=env)
        log = open(os.path.join(work, "refund-local.log"), "w")
        server = subprocess.Popen([os.path.join(release, "paysession-local"), "--port", "0", "--store", "dynamodb", "--table", TABLE,
                                   "--data-dir", os.path.join(work, "refund-local")], env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):
            text = open(log.name).read()
            if "client_secret:" in text:
                break
            time.sleep(0.1)
        base = re.search(r"^paysession-local listening on (\S+)", text, re.M).group(1)
        cid = re.search(r"^client_id: *(\S+)", text, re.M).group(1)
        secret = re.search(r"^client_secret: *(\S+)", text, re.M).group(1)
        req = urllib.request.Request(base + "/oauth/token", data=b"grant_type=client_credentials", method="POST")
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode())
        token = json.load(urllib.request.urlopen(req))["access_token"]

        with open(os.path.join(perf, "events", "apigw-v2-post.json")) as f:
            template = json.load(f)
        with open(os.path.join(perf, "subjects.json")) as f:
            hello = dict(json.load(f)["subjects"]["hello-http"])
        create = api_event(template, "POST", "/v1/payment_sessions",
                           {"authorization": f"Bearer {token}", "content-type": "application/json", "idempotency-key": "perf-__UNIQUE__"},
                           json.dumps({"amount": 1050, "currency": "EUR", "customer_id": "cus_perf", "reference": "order-__UNIQUE__"}))
        create_path = os.path.join(work, "paysession-refund-create-event.json")
        with open(create_path, "w") as f:
            json.dump(create, f)
        ratios = {"init": [], "cpu": [], "rss": [], "cpu_vs_create": []}
        figures = []
        for rnd in range(a.rounds + 1):
            payment = paid_payment(base, token)
            body = json.dumps({"payment_id": payment, "amount": 1})
            event = api_event(template, "POST", "/v1/refunds",
                              {"authorization": f"Bearer {token}", "content-type": "application/json",
                               "idempotency-key": "perf-__UNIQUE__"}, body)
            event_path = os.path.join(work, "paysession-refund-event.json")
            with open(event_path, "w") as f:
                json.dump(event, f)
            subjects = {"hello-http": hello, "refund-create": {
                "description": "paysession fn-refund-create (lambda-release, x86_64): token check, two reads, two TransactWriteItems",
                "argv": [os.path.join(shipped, "refund-create")], "handler": "bootstrap", "ddb": True,
                "env": {**fn_env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}, "event": event_path, "expect_status": 201},
                "session-create": {
                "description": "paysession fn-session-create: the same token check, one TransactWriteItems",
                "argv": [os.path.join(shipped, "session-create")], "handler": "bootstrap", "ddb": True,
                "env": {**fn_env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}, "event": create_path, "expect_status": 201}}
            subjects_path = os.path.join(work, "paysession-refund-subjects.json")
            with open(subjects_path, "w") as f:
                json.dump({"subjects": subjects}, f)
            jsonl = os.path.join(work, f"paysession-refund-{int(time.time() * 1000)}.jsonl")
            sh([sys.executable, os.path.join(perf, "lambda_bench.py"), "--subjects", subjects_path,
                "--event", os.path.join(perf, "events", "apigw-v2-post.json"), "-n", str(WARM), "--rounds", "1",
                "--warmup-rounds", "0", "--ddb-endpoint", endpoint, "--jsonl", jsonl, "hello-http", "refund-create", "session-create"])
            runs = {}
            for line in open(jsonl):
                rec = json.loads(line)
                if rec.get("subject") in ("hello-http", "refund-create", "session-create") and "init_ms" in rec:
                    runs[rec["subject"]] = rec
            if rnd == 0 or len(runs) < 3:
                continue  # the first round warms caches and DynamoDB Local's JIT
            h, r = runs["hello-http"], runs["refund-create"]
            ratios["init"].append(r["init_ms"] / h["init_ms"])
            ratios["cpu"].append(r["cpu_per_warm_ms"] / h["cpu_per_warm_ms"])
            ratios["rss"].append(r["peak_rss_kb"] / h["peak_rss_kb"])
            ratios["cpu_vs_create"].append(r["cpu_per_warm_ms"] / runs["session-create"]["cpu_per_warm_ms"])
            figures.append((r["init_ms"], r["cpu_per_warm_ms"], r["peak_rss_kb"], h["init_ms"], h["cpu_per_warm_ms"], h["peak_rss_kb"]))
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        col = lambda i: med([f[i] for f in figures])
        print(f"refund-create ÷ hello-http over {len(figures)} rounds ({WARM} warm refunds each): "
              f"init {med(ratios['init']):.2f}× [{min(ratios['init']):.2f}..{max(ratios['init']):.2f}], "
              f"CPU per warm call {med(ratios['cpu']):.2f}× [{min(ratios['cpu']):.2f}..{max(ratios['cpu']):.2f}], "
              f"peak RSS {med(ratios['rss']):.2f}×; CPU per warm call ÷ session-create's {med(ratios['cpu_vs_create']):.2f}×")
        print(f"  refund-create: init {col(0):.2f} ms, {col(1):.3f} ms CPU per warm call, {col(2) / 1024:.1f} MB; "
              f"hello-http: init {col(3):.2f} ms, {col(4):.3f} ms, {col(5) / 1024:.1f} MB")
    finally:
        if server:
            server.terminate()
            server.wait()
        ddb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
