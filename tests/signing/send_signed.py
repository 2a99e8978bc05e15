"""Signs API requests with independent implementations and sends them.

RFC 9421 with the PyPI package http-message-signatures, draft-cavage with the PyPI
package httpsig: none of paysession's code is involved in producing a signature.

stdin: {"url", "method", "token", "body" (text or null), "form": "rfc9421" | "cavage",
        "algorithm" (paysession's name), "key_id", "private_key_pem",
        "sends": how many times to send the identical signed request (replays),
        "skew_seconds": added to the signing time, "tamper": change the body after signing}
stdout: [{"status", "body"}] per send.
"""
import base64
import datetime
import email.utils
import hashlib
import json
import sys
import uuid

import requests

spec = json.load(sys.stdin)
body = spec.get("body")
data = body.encode() if body is not None else None
headers = {"Authorization": f"Bearer {spec['token']}"}
if data is not None:
    headers["Content-Type"] = "application/json"
request = requests.Request(spec["method"], spec["url"], headers=headers, data=data).prepare()
now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=spec.get("skew_seconds", 0))

if spec["form"] == "rfc9421":
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

    class Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id):
            return spec["private_key_pem"].encode()

        def resolve_public_key(self, key_id):
            raise NotImplementedError

    alg = {
        "ed25519": algorithms.ED25519,
        "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
        "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
        "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    }[spec["algorithm"]]
    # With a body the library computes Content-Digest itself and covers it.
    HTTPMessageSigner(signature_algorithm=alg, key_resolver=Keys()).sign(
        request,
        key_id=spec["key_id"],
        created=now,
        nonce=uuid.uuid4().hex,
        label="sig1",
        covered_component_ids=["@method", "@target-uri", "authorization"],
        body=data,
    )
else:
    import httpsig

    request.headers["Date"] = email.utils.format_datetime(now, usegmt=True)
    request.headers["X-Request-Id"] = str(uuid.uuid4())
    names = ["(request-target)", "date", "x-request-id"]
    if data is not None:
        request.headers["Digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(data).digest()).decode()
        names.insert(2, "digest")
    path = request.path_url
    signer = httpsig.HeaderSigner(
        spec["key_id"], spec["private_key_pem"].encode(), algorithm="rsa-sha256", headers=names, sign_header="signature"
    )
    signed = signer.sign(dict(request.headers), method=request.method, path=path)
    request.headers["Signature"] = signed["signature"]

if spec.get("tamper"):
    request.body = body.replace("1050", "9999").encode()

session = requests.Session()
out = []
for _ in range(spec.get("sends", 1)):
    r = session.send(request)
    out.append({"status": r.status_code, "body": r.json() if r.text else None})
print(json.dumps(out))
