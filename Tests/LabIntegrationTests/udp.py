#!/usr/bin/env python3
"""UDP helper for natlab's integration tests, run inside lab nodes with `natlab exec`.

reflect PORT           answer every datagram with "OBS <source ip>:<source port>" (a STUN-like reflector)
probe BIND HOST:PORT   send from local port BIND, print the observed mapping as JSON, then keep listening
                       LISTEN seconds (env LISTEN, default 0) and print every datagram that arrives
send BIND HOST:PORT    send one datagram "HELLO" from local port BIND
punch BIND REFLECTOR DIR ME PEER COUNT
                       hole punching: learn this socket's public mapping from REFLECTOR (host:port, or
                       "local:IP" to use IP:BIND itself), publish it as DIR/ME, read the peer's from
                       DIR/PEER, send COUNT 1000-byte datagrams to it while answering whatever arrives;
                       prints {"sent": n, "received": n}
relay PORT             a toy relay: the first two sources that send to PORT are paired and everything
                       one sends is forwarded to the other
"""
import json, socket, sys, time

def main():
    mode = sys.argv[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "reflect":
        s.bind(("0.0.0.0", int(sys.argv[2])))
        print("ready", flush=True)
        while True:
            data, src = s.recvfrom(2048)
            s.sendto(b"OBS %s:%d" % (src[0].encode(), src[1]), src)
    if mode == "relay":
        s.bind(("0.0.0.0", int(sys.argv[2])))
        print("ready", flush=True)
        peers = []
        while True:
            data, src = s.recvfrom(2048)
            if src not in peers and len(peers) < 2:
                peers.append(src)
            if src in peers and len(peers) == 2:
                s.sendto(data, peers[1 - peers.index(src)])
    if mode == "punch":
        return punch(s)
    bind = int(sys.argv[2]); host, port = sys.argv[3].rsplit(":", 1)
    s.bind(("0.0.0.0", bind))
    if mode == "send":
        s.sendto(b"HELLO", (host, int(port)))
        return
    s.settimeout(2.0)
    observed = None
    for _ in range(5):  # the reflector may still be starting
        s.sendto(b"PROBE", (host, int(port)))
        try:
            data, src = s.recvfrom(2048)
            observed = data.decode().split(" ", 1)[1]
            break
        except socket.timeout:
            continue
    print(json.dumps({"observed": observed}), flush=True)
    listen = float(__import__("os").environ.get("LISTEN", "0"))
    deadline = time.time() + listen
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            data, src = s.recvfrom(2048)
            print(json.dumps({"received": data.decode(errors="replace"), "from": "%s:%d" % src}), flush=True)
        except socket.timeout:
            break

def punch(s):
    import os
    bind, reflector, directory, me, peer, count = sys.argv[2:8]
    s.bind(("0.0.0.0", int(bind)))
    s.settimeout(0.5)
    if reflector.startswith("local:"):
        mine = "%s:%s" % (reflector[6:], bind)
    else:
        host, port = reflector.rsplit(":", 1)
        mine = None
        for _ in range(10):
            s.sendto(b"PROBE", (host, int(port)))
            try:
                data, _ = s.recvfrom(2048)
                mine = data.decode().split(" ", 1)[1]
                break
            except socket.timeout:
                pass
    with open(os.path.join(directory, me + ".tmp"), "w") as f:
        f.write(mine)
    os.rename(os.path.join(directory, me + ".tmp"), os.path.join(directory, me))
    target = None
    for _ in range(200):
        try:
            with open(os.path.join(directory, peer)) as f:
                host, port = f.read().rsplit(":", 1)
                target = (host, int(port))
                break
        except FileNotFoundError:
            time.sleep(0.02)
    sent = received = 0
    s.settimeout(0.02)
    payload = b"x" * 1000
    deadline = time.time() + 10
    while (sent < int(count) or received < int(count)) and time.time() < deadline:
        if sent < int(count):
            s.sendto(payload, target); sent += 1
        try:
            data, src = s.recvfrom(2048)
            if data == payload:
                received += 1
                target = src  # answer where the peer really is (peer-reflexive)
        except socket.timeout:
            pass
    print(json.dumps({"sent": sent, "received": received, "mapping": mine}), flush=True)

main()
