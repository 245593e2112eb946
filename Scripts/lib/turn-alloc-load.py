#!/usr/bin/env python3
"""Allocation churn against a TURN server (coturn 4.6.1's uclient has no allocation load mode):
SOCKETS client sockets, each cycling Allocate (long-term credentials) -> Refresh LIFETIME=0, for
SECONDS. Prints JSON: completed allocations, allocations/s, timeouts.
Usage: turn-alloc-load.py SERVER PORT USER PASSWORD SECONDS SOCKETS"""
import hashlib, hmac, json, os, select, socket, struct, sys, time, zlib

ip, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seconds, count = float(sys.argv[5]), int(sys.argv[6])
COOKIE = 0x2112A442

def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)

def message(mtype, attrs, tid, key=None):
    body = attrs
    if key is not None:
        head = struct.pack("!HHI", mtype, len(body) + 24, COOKIE) + tid
        body += attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    head = struct.pack("!HHI", mtype, len(body) + 8, COOKIE) + tid
    body += attr(0x8028, struct.pack("!I", (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF))
    return struct.pack("!HHI", mtype, len(body), COOKIE) + tid + body

def parse(data):
    mtype, length = struct.unpack("!HH", data[:4])
    out, o = {"class": ((mtype >> 7) & 2) | ((mtype >> 4) & 1), "tid": data[8:20]}, 20
    while o + 4 <= 20 + length:
        t, l = struct.unpack("!HH", data[o:o + 4])
        v = data[o + 4:o + 4 + l]
        if t == 0x0009: out["code"] = v[2] * 100 + v[3]
        elif t == 0x0014: out["realm"] = v.decode()
        elif t == 0x0015: out["nonce"] = v.decode()
        o += 4 + l + (4 - l % 4) % 4
    return out

UDP = attr(0x0019, bytes([17, 0, 0, 0]))

class Client:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.nonce = self.realm = self.key = None
        self.state = "allocate"
        self.send()

    def request(self):
        if self.nonce is None:
            return message(0x0003, UDP, self.tid)
        creds = attr(0x0006, user.encode()) + attr(0x0014, self.realm.encode()) + attr(0x0015, self.nonce.encode())
        if self.state == "allocate":
            return message(0x0003, UDP + attr(0x000D, struct.pack("!I", 600)) + creds, self.tid, self.key)
        return message(0x0004, attr(0x000D, b"\0\0\0\0") + creds, self.tid, self.key)

    def send(self):
        self.tid = os.urandom(12)
        self.sent = time.monotonic()
        self.sock.sendto(self.request(), (ip, port))

    def receive(self):
        r = parse(self.sock.recv(2048))
        if r["tid"] != self.tid:
            return 0
        done = 0
        if r.get("code") in (401, 438):
            self.nonce, self.realm = r["nonce"], r.get("realm", self.realm)
            self.key = hashlib.md5(f"{user}:{self.realm}:{password}".encode()).digest()
        elif r["class"] == 2 and self.state == "allocate":
            self.state = "delete"
        elif r["class"] == 2:
            self.state, done = "allocate", 1
        elif r.get("code") == 437 and self.state == "allocate":
            self.state = "delete"  # left over from a lost answer: delete it, then allocate again
        elif r.get("code") == 437:
            self.state, done = "allocate", 1  # a retransmitted delete: the first one deleted it
        else:
            raise SystemExit(f"unexpected answer {r}")
        self.send()
        return done

clients = [Client() for _ in range(count)]
by_fd = {c.sock.fileno(): c for c in clients}
poller = select.epoll()
for fd in by_fd: poller.register(fd, select.EPOLLIN)
start = time.monotonic()
# Warm-up: every client past its first challenge.
done, timeouts, end = 0, 0, start + seconds
counting_from = None
while True:
    now = time.monotonic()
    if now >= end: break
    for fd, _ in poller.poll(0.05):
        try:
            d = by_fd[fd].receive()
        except BlockingIOError:
            continue
        done += d
    now = time.monotonic()
    for c in clients:
        if now - c.sent > 0.5:
            timeouts += 1
            c.send()
elapsed = time.monotonic() - start
print(json.dumps({"allocations": done, "seconds": round(elapsed, 3), "per_second": round(done / elapsed, 1), "timeouts": timeouts}))
