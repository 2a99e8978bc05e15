"""Checks SigV4-signed requests with botocore's own signer (the AWS SDK for Python),
independently of the Rust side: for each captured request it recomputes the canonical
request, string to sign and signature over the headers the request says it signed, at the
request's own X-Amz-Date, and compares. Input (stdin): endpoint, region, service,
access_key, secret_key, token, messages [{headers, body}] (each a POST to the endpoint's /).
Output: {"results": [true | "why not", ...]}."""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PREFIX = "AWS4-HMAC-SHA256 "


def verdict(inp, message):
    headers = message["headers"]
    auth = headers.get("authorization", "")
    if not auth.startswith(PREFIX):
        return f"not a SigV4 authorization header: {auth!r}"
    parts = dict(p.strip().split("=", 1) for p in auth[len(PREFIX):].split(","))
    signed = parts["SignedHeaders"].split(";")
    missing = [h for h in signed if h not in headers]
    if missing:
        return f"signed headers not sent: {missing}"
    request = AWSRequest(method="POST", url=inp["endpoint"].rstrip("/") + "/", data=message["body"].encode(),
                         headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(inp["access_key"], inp["secret_key"], inp["token"]), inp["service"], inp["region"])
    if signer.signed_headers(signer.headers_to_sign(request)) != parts["SignedHeaders"]:
        return f"signed header list differs: {parts['SignedHeaders']}"
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if parts["Credential"] != signer.scope(request):
        return f"credential scope {parts['Credential']} != {signer.scope(request)}"
    if parts["Signature"] != expected:
        return f"signature {parts['Signature']} != botocore's {expected}"
    return True


def main():
    inp = json.load(sys.stdin)
    print(json.dumps({"results": [verdict(inp, m) for m in inp["messages"]]}))


if __name__ == "__main__":
    main()
