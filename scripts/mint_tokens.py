#!/usr/bin/env python3
"""Mint JWTs with PyJWT: an implementation independent of the Rust code under test.

Reads a JSON array of requests on stdin and writes a JSON array of tokens (same order) on
stdout. Each request:

    {"alg": "RS256", "key_file": "path/to/private.pem" | "secret_hex": "00ff...",
     "claims": {...}, "headers": {"kid": "k1", ...}}

Used by crates/veritrail-core/tests/auth_pyjwt.rs. Needs `python3 -m pip install 'pyjwt[crypto]'`.
"""

import json
import sys

import jwt  # PyJWT
from cryptography.hazmat.primitives.serialization import load_pem_private_key


def key_for(req):
    if "secret_hex" in req:
        return bytes.fromhex(req["secret_hex"])
    with open(req["key_file"], "rb") as f:
        return load_pem_private_key(f.read(), password=None)


def main():
    requests = json.load(sys.stdin)
    tokens = [
        jwt.encode(r["claims"], key_for(r), algorithm=r["alg"], headers=r.get("headers") or None)
        for r in requests
    ]
    json.dump(tokens, sys.stdout)


if __name__ == "__main__":
    main()
