#!/usr/bin/env python3
"""UDP helper for natlab's integration tests, run inside lab nodes with `natlab exec`.

reflect PORT           answer every datagram with "OBS <source ip>:<source port>" (a STUN-like reflector)
probe BIND HOST:PORT   send from local port BIND, print the observed mapping as JSON, then keep listening
                       LISTEN seconds (env LISTEN, default 0) and print every datagram that arrives
send BIND HOST:PORT    send one datagram "HELLO" from local port BIND
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

main()
