#!/usr/bin/env python3
"""A foreign traversal agent for natlab, built on aioice: the template for bringing your own.

It speaks natlab's two contracts (README "Rendezvous protocol" and "Agent reports"):
- signalling: JSON lines over TCP to `natlab serve rendezvous` (register, send an offer with
  ufrag/pwd/candidates/bytes, read the peer's offer, send "done");
- self-report: JSON lines on stdout, one object per line with "event", "t", "agent":
  start, candidate, pair-selected, path, data, error, done.

Usage (inside a lab node):
  python3 Scripts/aioice-agent.py --id bob --peer alice --rendezvous 203.0.113.3:7000 \
      --stun 203.0.113.3:3478 [--turn IP:PORT --turn-user U --turn-password P] [--relay-only] \
      [--controlling|--controlled] [--bytes N] [--deadline S]
Needs `pip install aioice` (Scripts/test installs it into .build/pyenv).
"""
import argparse
import asyncio
import json
import sys
import time

from aioice import Candidate, Connection, TransportPolicy

T0 = time.monotonic()
MARKER = 0xA5  # first byte of application data: not STUN (0-3), not ChannelData (64-79)


def emit(agent, event, **fields):
    fields.update(event=event, agent=agent, t=round(time.monotonic() - T0, 3))
    sys.stdout.write(json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def cand(c):
    return {"type": c.type, "address": c.host, "port": c.port}


def classify(local, remote):
    if "relay" in (local["type"], remote["type"]):
        return "relay"
    if local["type"] == "host" and remote["type"] == "host":
        return "direct"
    if local["type"] != "host" and remote["type"] != "host" and local["address"] == remote["address"]:
        return "hairpin"
    return "direct"


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--id", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--rendezvous", required=True)
    ap.add_argument("--stun")
    ap.add_argument("--turn")
    ap.add_argument("--turn-user", default="")
    ap.add_argument("--turn-password", default="")
    ap.add_argument("--relay-only", action="store_true")
    role = ap.add_mutually_exclusive_group()
    role.add_argument("--controlling", action="store_true")
    role.add_argument("--controlled", action="store_true")
    ap.add_argument("--bytes", type=int, default=16384)
    ap.add_argument("--deadline", type=float, default=30)
    a = ap.parse_args()
    me = a.id
    controlling = a.controlling or (not a.controlled and a.id < a.peer)

    kw = {}
    if a.stun:
        kw["stun_server"] = hostport(a.stun)
    if a.turn:
        kw.update(turn_server=hostport(a.turn), turn_username=a.turn_user, turn_password=a.turn_password)
    if a.relay_only:
        kw["transport_policy"] = TransportPolicy.RELAY
    conn = Connection(ice_controlling=controlling, components=1, use_ipv6=False, **kw)
    emit(me, "start", peer=a.peer, role="controlling" if controlling else "controlled", version=1,
         implementation="aioice", bytes=a.bytes, deadline=a.deadline)

    await conn.gather_candidates()
    for c in conn.local_candidates:
        emit(me, "candidate", side="local", offered=True, priority=c.priority, foundation=c.foundation,
             **cand(c), **({"related": "%s:%d" % (c.related_address, c.related_port)} if c.related_address else {}))

    # Rendezvous: connect (retrying while the server starts), register, send the offer.
    host, port = hostport(a.rendezvous)
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            break
        except OSError:
            if time.monotonic() - T0 > a.deadline:
                emit(me, "error", message="rendezvous %s unreachable" % a.rendezvous, fatal=True)
                return 1
            await asyncio.sleep(0.2)

    def send(obj):
        writer.write((json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode())

    send({"type": "register", "id": me})
    send({"type": "send", "to": a.peer, "body": {
        "kind": "offer", "ufrag": conn.local_username, "pwd": conn.local_password, "bytes": a.bytes,
        "candidates": ["candidate:" + c.to_sdp() for c in conn.local_candidates]}})
    await writer.drain()

    offer = asyncio.get_running_loop().create_future()
    peer_done = asyncio.Event()

    async def read_rendezvous():
        while True:
            line = await reader.readline()
            if not line:
                return
            msg = json.loads(line)
            if msg.get("type") == "error":
                emit(me, "error", message="rendezvous: " + str(msg.get("reason")), fatal=False)
            if msg.get("type") != "message" or msg.get("from") != a.peer:
                continue
            body = msg.get("body", {})
            if body.get("kind") == "offer" and not offer.done():
                offer.set_result(body)
            elif body.get("kind") == "done":
                peer_done.set()

    reading = asyncio.ensure_future(read_rendezvous())
    ok = False
    sent = received = 0
    expected = None
    try:
        remote = await asyncio.wait_for(offer, a.deadline - (time.monotonic() - T0))
        expected = int(remote.get("bytes", 0))
        for line in remote.get("candidates", []):
            c = Candidate.from_sdp(line.split(":", 1)[1])
            emit(me, "candidate", side="remote", priority=c.priority, foundation=c.foundation, **cand(c))
            await conn.add_remote_candidate(c)
        await conn.add_remote_candidate(None)
        conn.remote_username, conn.remote_password = remote["ufrag"], remote["pwd"]
        started = time.monotonic()
        await asyncio.wait_for(conn.connect(), a.deadline - (time.monotonic() - T0))

        # aioice pairs from its host (or relay) socket and does not keep the mapped address the
        # peer saw: report the server-reflexive candidate of that base when the peer is not on a
        # host address, which is what the peer saw through an endpoint-independent NAT.
        pair = conn._nominated[1]
        local, rem = cand(pair.local_candidate), cand(pair.remote_candidate)
        if local["type"] == "host" and rem["type"] != "host":
            for c in conn.local_candidates:
                if c.type == "srflx" and c.related_address == local["address"]:
                    local = dict(cand(c), base="%s:%d" % (pair.local_candidate.host, pair.local_candidate.port))
        via = "relay" if local["type"] == "relay" else "direct"
        emit(me, "pair-selected", local=local, remote=rem, via=via, role="controlling" if conn.ice_controlling else "controlled",
             elapsed=round(time.monotonic() - started, 3))
        emit(me, "path", state="up", path=classify(local, rem), via=via)

        async def receive():
            nonlocal received
            while received < expected:
                data = await conn.recv()
                received += len(data)

        receiving = asyncio.ensure_future(receive())
        while sent < a.bytes:
            n = min(1000, a.bytes - sent)
            await conn.send(bytes([MARKER]) + b"Z" * (n - 1))
            sent += n
            await asyncio.sleep(0.001)
        await asyncio.wait_for(receiving, max(0.1, a.deadline - (time.monotonic() - T0)))
        send({"type": "send", "to": a.peer, "body": {"kind": "done", "received": received}})
        await writer.drain()
        try:
            await asyncio.wait_for(peer_done.wait(), 2)
        except asyncio.TimeoutError:
            pass
        ok = True
    except asyncio.TimeoutError:
        emit(me, "path", state="none", path="none")
        emit(me, "error", message="no connection within the deadline (%s s)" % a.deadline, fatal=True)
    except Exception as e:  # report, never a traceback on stdout
        emit(me, "error", message="%s: %s" % (type(e).__name__, e), fatal=True)
    complete = expected is not None and sent >= a.bytes and received >= expected
    emit(me, "data", sent=sent, received=received, expected=expected if expected is not None else -1, complete=complete)
    emit(me, "done", ok=ok and complete, **{"consent-lost": 0})
    reading.cancel()
    writer.close()
    await conn.close()
    return 0 if ok and complete else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
