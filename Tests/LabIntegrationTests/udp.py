#!/usr/bin/env python3
"""UDP helper for natlab's integration tests, run inside lab nodes with `natlab exec`.

reflect PORT           answer every datagram with "OBS <source ip>:<source port>" (a STUN-like reflector)
probe BIND HOST:PORT   send from local port BIND, print the observed mapping as JSON, then keep listening
                       LISTEN seconds (env LISTEN, default 0) and print every datagram that arrives
send BIND HOST:PORT    send one datagram "HELLO" from local port BIND
listen BIND SECONDS    bind local port BIND (both families), print "ready", then print every datagram that
                       arrives during SECONDS without ever sending (a port nobody inside has opened)
punch BIND REFLECTOR DIR ME PEER COUNT
                       hole punching: learn this socket's public mapping from REFLECTOR (host:port, or
                       "local:IP" to use IP:BIND itself), publish it as DIR/ME, read the peer's from
                       DIR/PEER, send COUNT 1000-byte datagrams to it while answering whatever arrives;
                       prints {"sent": n, "received": n}
relay PORT             a toy relay: the first two sources that send to PORT are paired and everything
                       one sends is forwarded to the other

IPv6: a HOST containing ':' (optionally in brackets, [2001:db8::1]:3478) makes the socket AF_INET6;
reflect listens on both families (one socket each), and IPv6 endpoints are printed as [ADDR]:PORT.
"""
import json, select, socket, sys, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def split(endpoint):
    host, port = endpoint.rsplit(":", 1)
    return host.strip("[]"), int(port)

def show(src):
    return ("[%s]:%d" if ":" in src[0] else "%s:%d") % (src[0], src[1])

def udp(fam):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s

def anyaddr(fam):
    return "::" if fam == socket.AF_INET6 else "0.0.0.0"

def main():
    mode = sys.argv[1]
    if mode == "reflect":
        socks = [udp(socket.AF_INET)]
        socks[0].bind(("0.0.0.0", int(sys.argv[2])))
        try:
            v6 = udp(socket.AF_INET6); v6.bind(("::", int(sys.argv[2]))); socks.append(v6)
        except OSError:
            pass  # no IPv6 in this node
        print("ready", flush=True)
        while True:
            ready, _, _ = select.select(socks, [], [])
            for s in ready:
                data, src = s.recvfrom(2048)
                s.sendto(b"OBS " + show(src).encode(), src)
    if mode == "relay":
        s = udp(socket.AF_INET)
        s.bind(("0.0.0.0", int(sys.argv[2])))
        print("ready", flush=True)
        peers = []
        while True:
            data, src = s.recvfrom(2048)
            if src not in peers and len(peers) < 2:
                peers.append(src)
            if src in peers and len(peers) == 2:
                s.sendto(data, peers[1 - peers.index(src)])
    if mode == "listen":
        socks = [udp(socket.AF_INET)]
        socks[0].bind(("0.0.0.0", int(sys.argv[2])))
        try:
            v6 = udp(socket.AF_INET6); v6.bind(("::", int(sys.argv[2]))); socks.append(v6)
        except OSError:
            pass
        print("ready", flush=True)
        deadline = time.time() + float(sys.argv[3])
        while time.time() < deadline:
            ready, _, _ = select.select(socks, [], [], max(0.01, deadline - time.time()))
            for s in ready:
                data, src = s.recvfrom(2048)
                print(json.dumps({"received": data.decode(errors="replace"), "from": show(src)}), flush=True)
        return
    if mode == "punch":
        return punch()
    bind = int(sys.argv[2]); host, port = split(sys.argv[3])
    s = udp(family(host))
    s.bind((anyaddr(family(host)), bind))
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
            print(json.dumps({"received": data.decode(errors="replace"), "from": show(src)}), flush=True)
        except socket.timeout:
            break

def punch():
    import os
    bind, reflector, directory, me, peer, count = sys.argv[2:8]
    fam = family(reflector[6:] if reflector.startswith("local:") else split(reflector)[0])
    s = udp(fam)
    s.bind((anyaddr(fam), int(bind)))
    s.settimeout(0.5)
    if reflector.startswith("local:"):
        mine = show((reflector[6:].strip("[]"), int(bind)))
    else:
        host, port = split(reflector)
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
                target = split(f.read())
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
