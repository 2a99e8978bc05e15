"""Verifies Standard Webhooks `v1a` (Ed25519) signatures with the independent `cryptography`
package, holding only the endpoint's public key (`whpk_<base64>`).

stdin: {"public_key": "whpk_…", "messages": [{"headers": {...}, "body": "..."}]}
stdout: {"results": [true | "<why not>", ...]}: true when one v1a signature in the
webhook-signature header verifies over "{webhook-id}.{webhook-timestamp}.{body}".
"""

import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def main():
    request = json.load(sys.stdin)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(request["public_key"].removeprefix("whpk_")))
    results = []
    for m in request["messages"]:
        h = {k.lower(): v for k, v in m["headers"].items()}
        signed = f'{h["webhook-id"]}.{h["webhook-timestamp"]}.{m["body"]}'.encode()
        verdict = "no v1a signature verifies"
        for part in h["webhook-signature"].split(" "):
            version, _, sig = part.partition(",")
            if version != "v1a":
                continue
            try:
                key.verify(base64.b64decode(sig), signed)
                verdict = True
                break
            except (InvalidSignature, ValueError):
                pass
        results.append(verdict)
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
