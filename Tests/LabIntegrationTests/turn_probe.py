#!/usr/bin/env python3
"""Sends the same malformed and unauthenticated requests to a TURN server and prints, as one JSON
object, what each case got back: "none" (no answer within the timeout), "success", or the error code.
Usage: turn_probe.py SERVER_IP PORT USER PASSWORD"""
import hashlib, hmac, json, os, socket, struct, sys, zlib

ip, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
COOKIE = 0x2112A442

def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)

def message(mtype, attrs=b"", tid=None, key=None, fingerprint=True, cookie=COOKIE):
    tid = tid or os.urandom(12)
    body = attrs
    if key is not None:
        head = struct.pack("!HHI", mtype, len(body) + 24, cookie) + tid
        body += attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    if fingerprint:
        head = struct.pack("!HHI", mtype, len(body) + 8, cookie) + tid
        body += attr(0x8028, struct.pack("!I", (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF))
    return struct.pack("!HHI", mtype, len(body), cookie) + tid + body

def parse(data):
    if len(data) < 20:
        return {"raw": data.hex()}
    mtype, length = struct.unpack("!HH", data[:4])
    out, o = {"class": ((mtype >> 7) & 2) | ((mtype >> 4) & 1)}, 20
    while o + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[o:o + 4])
        v = data[o + 4:o + 4 + l]
        if t == 0x0009:
            out["code"] = v[2] * 100 + v[3]
        elif t == 0x0014:
            out["realm"] = v.decode()
        elif t == 0x0015:
            out["nonce"] = v.decode()
        o += 4 + l + (4 - l % 4) % 4
    return out

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.5)

def ask(data, s=None):
    s = s or sock
    s.sendto(data, (ip, port))
    try:
        return parse(s.recvfrom(4096)[0])
    except socket.timeout:
        return None

def verdict(r):
    if r is None:
        return "none"
    if "code" in r:
        return str(r["code"])
    return "success" if r.get("class") == 2 else "class%d" % r.get("class", -1)

ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND, SEND, BINDING = 0x0003, 0x0004, 0x0008, 0x0009, 0x0016, 0x0001
UDP = attr(0x0019, bytes([17, 0, 0, 0]))
challenge = ask(message(ALLOCATE, UDP))
realm, nonce = challenge["realm"], challenge["nonce"]

def creds(u=user, r=None, n=None):
    return attr(0x0006, u.encode()) + attr(0x0014, (r or realm).encode()) + attr(0x0015, (n or nonce).encode())

key = hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()
wrong = hashlib.md5(f"{user}:{realm}:not-{password}".encode()).digest()
peer = attr(0x0012, struct.pack("!HHI", 1, 5000 ^ (COOKIE >> 16), 0xC6336409 ^ COOKIE))  # 198.51.100.9:5000
good = message(ALLOCATE, UDP)
bad_fp = bytearray(good); bad_fp[-1] ^= 1
cases = {
    "allocate without credentials": message(ALLOCATE, UDP),
    "binding request": message(BINDING),
    "truncated header (10 bytes)": good[:10],
    "length field beyond the datagram": good[:2] + struct.pack("!H", 200) + good[4:],
    "trailing bytes after the message": good + b"\0\0\0\0",
    "wrong FINGERPRINT": bytes(bad_fp),
    "no magic cookie": message(ALLOCATE, UDP, cookie=0x01020304, fingerprint=False),
    "attribute overruns the message": message(ALLOCATE, struct.pack("!HH", 0x0019, 40) + b"\x11\0\0\0"),
    "wrong password": message(ALLOCATE, UDP + creds(), key=wrong),
    "unknown user": message(ALLOCATE, UDP + creds(u="mallory"), key=hashlib.md5(f"mallory:{realm}:x".encode()).digest()),
    "integrity without USERNAME": message(ALLOCATE, UDP + attr(0x0014, realm.encode()) + attr(0x0015, nonce.encode()), key=key),
    "integrity without NONCE": message(ALLOCATE, UDP + attr(0x0006, user.encode()) + attr(0x0014, realm.encode()), key=key),
    "forged nonce": message(ALLOCATE, UDP + creds(n="0123456789abcdef"), key=key),
    "allocate without REQUESTED-TRANSPORT": message(ALLOCATE, creds(), key=key),
    "allocate for TCP over UDP": message(ALLOCATE, attr(0x0019, bytes([6, 0, 0, 0])) + creds(), key=key),
    "allocate with an unknown comprehension-required attribute": message(ALLOCATE, UDP + attr(0x0077, b"\1\2\3\4") + creds(), key=key),
    "refresh without an allocation": message(REFRESH, attr(0x000D, struct.pack("!I", 600)) + creds(), key=key),
    "create-permission without an allocation": message(CREATE_PERMISSION, peer + creds(), key=key),
    "channel-bind without an allocation": message(CHANNEL_BIND, attr(0x000C, b"\x40\0\0\0") + peer + creds(), key=key),
    "send indication without an allocation": message(SEND, peer + attr(0x0013, b"hello")),
    "channel data without an allocation": b"\x40\x00\x00\x04abcd",
    "unauthenticated create-permission": message(CREATE_PERMISSION, peer),
}
result = {name: verdict(ask(data)) for name, data in cases.items()}

def fresh(build):
    # From a 5-tuple of its own, with its own nonce: coturn keeps per-5-tuple state (the user of the
    # first authenticated request) even without an allocation.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        return verdict(ask(build(ask(message(ALLOCATE, UDP), s)["nonce"]), s))
    finally:
        s.close()

result["unknown user"] = fresh(lambda n: message(ALLOCATE, UDP + creds(u="mallory", n=n), key=hashlib.md5(f"mallory:{realm}:x".encode()).digest()))
result["wrong password"] = fresh(lambda n: message(ALLOCATE, UDP + creds(n=n), key=wrong))
# With an allocation (on its own socket): the requests that depend on one.
s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s2.settimeout(0.5)
n2 = ask(message(ALLOCATE, UDP), s2)["nonce"]
c2 = lambda: creds(n=n2)
alloc = ask(message(ALLOCATE, UDP + attr(0x000D, struct.pack("!I", 600)) + c2(), key=key), s2)
result["allocate (authenticated)"] = verdict(alloc)
result["second allocate on the 5-tuple"] = verdict(ask(message(ALLOCATE, UDP + c2(), key=key), s2))
result["channel-bind to channel 0x3fff"] = verdict(ask(message(CHANNEL_BIND, attr(0x000C, b"\x3f\xff\0\0") + peer + c2(), key=key), s2))
result["channel-bind without a peer"] = verdict(ask(message(CHANNEL_BIND, attr(0x000C, b"\x40\0\0\0") + c2(), key=key), s2))
result["create-permission without a peer"] = verdict(ask(message(CREATE_PERMISSION, c2(), key=key), s2))
result["refresh with lifetime 0"] = verdict(ask(message(REFRESH, attr(0x000D, b"\0\0\0\0") + c2(), key=key), s2))
print(json.dumps(result, indent=1, sort_keys=True))
