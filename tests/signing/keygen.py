"""Generates a key pair with the `cryptography` package for a paysession signing algorithm.

stdin: {"algorithm", "format": "pem" | "jwk"}; stdout: {"private_key_pem", "public_key"}.
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

spec = json.load(sys.stdin)
alg = spec["algorithm"]
if alg == "ed25519":
    key = ed25519.Ed25519PrivateKey.generate()
elif alg == "ecdsa-p256-sha256":
    key = ec.generate_private_key(ec.SECP256R1())
else:
    key = rsa.generate_private_key(public_exponent=65537, key_size=spec.get("bits", 2048))
private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
pub = key.public_key()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def be(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


if spec["format"] == "pem":
    public = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
elif alg == "ed25519":
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = json.dumps({"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)})
elif alg == "ecdsa-p256-sha256":
    nums = pub.public_numbers()
    public = json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))})
else:
    nums = pub.public_numbers()
    public = json.dumps({"kty": "RSA", "n": b64u(be(nums.n)), "e": b64u(be(nums.e))})
print(json.dumps({"private_key_pem": private, "public_key": public}))
