"""An independent reading of C2SP tlog-cosignature (cosignature/v1, Ed25519), signed-note and
tlog-witness, written from the spec text with Python's `cryptography`, sharing no code with
veritrail.

  cosig.py verify VKEY        reads a cosigned checkpoint on stdin; prints the timestamp
  cosig.py request OLD_SIZE   prints an add-checkpoint body for a new log key it makes up:
                              line 1 of stdout is the log's verifier key, the rest the body
"""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives import serialization

EM_DASH = "\u2014 "


def key_id(name: str, alg: int, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]


def verify(vkey: str) -> None:
    name, hex_id, b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x04, "a cosignature/v1 verifier key has type byte 0x04"
    pub = raw[1:]
    assert bytes.fromhex(hex_id) == key_id(name, 0x04, pub), "key id"
    note = sys.stdin.read()
    body, sigs = note.rsplit("\n\n", 1)
    body += "\n"
    for line in sigs.splitlines():
        assert line.startswith(EM_DASH)
        signer, sig_b64 = line[len(EM_DASH):].split(" ")
        sig = base64.b64decode(sig_b64)
        if signer != name or sig[:4] != key_id(name, 0x04, pub):
            continue  # other keys are ignored, as signed-note says
        timestamp = int.from_bytes(sig[4:12], "big")
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()
        Ed25519PublicKey.from_public_bytes(pub).verify(sig[12:], message)
        print(timestamp)
        return
    sys.exit("no cosignature by " + name)


def request(old_size: int) -> None:
    # A one-leaf log: the record "hello", its RFC 6962 leaf hash is the root.
    origin = "interop.example/log"
    root = hashlib.sha256(b"\x00hello").digest()
    body = f"{origin}\n1\n{base64.b64encode(root).decode()}\n"
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    kid = key_id(origin, 0x01, pub)
    sig = base64.b64encode(kid + key.sign(body.encode())).decode()
    vkey = f"{origin}+{kid.hex()}+{base64.b64encode(bytes([1]) + pub).decode()}"
    print(vkey)
    sys.stdout.write(f"old {old_size}\n\n{body}\n{EM_DASH}{origin} {sig}\n")


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        request(int(sys.argv[2]))
