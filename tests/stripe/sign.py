"""Stripe-Signature headers made and checked by Stripe's official Python library (`stripe`).

stdin: {"sign": [{"payload": str, "secret": str, "timestamp": int}], "verify": [{"payload": str,
"header": str, "secret": str}]}
stdout: {"headers": [str], "verified": [bool]}

`WebhookSignature._compute_signature` is the function the library itself uses to check a
signature; the library publishes no signing helper for Python, so the tests' headers are
built from it exactly as Stripe's own test helpers (stripe-node's generateTestHeaderString)
build theirs: "t=<timestamp>,v1=<signature of '<timestamp>.<payload>'>".
"""
import json
import sys

from stripe import SignatureVerificationError, WebhookSignature

req = json.load(sys.stdin)
headers = []
for s in req.get("sign", []):
    t = int(s["timestamp"])
    signature = WebhookSignature._compute_signature(f"{t}.{s['payload']}", s["secret"])
    headers.append(f"t={t},v1={signature}")
verified = []
for v in req.get("verify", []):
    try:
        WebhookSignature.verify_header(v["payload"], v["header"], v["secret"], tolerance=300)
        verified.append(True)
    except SignatureVerificationError:
        verified.append(False)
json.dump({"headers": headers, "verified": verified}, sys.stdout)
