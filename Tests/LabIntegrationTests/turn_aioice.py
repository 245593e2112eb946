#!/usr/bin/env python3
"""One aioice agent, relay-only through a TURN server; signalling through files in a directory.
Usage: turn_aioice.py a|b SIGNAL_DIR TURN_IP TURN_PORT USER PASSWORD [udp|tcp]
Agent a is controlling and sends "ping"; b answers "pong". Prints the selected pair and exits 0 on success."""
import asyncio, json, os, sys, time
from aioice import Candidate, Connection, TransportPolicy

role, sigdir, ip, port, user, password = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
transport = sys.argv[7] if len(sys.argv) > 7 else "udp"
other = "b" if role == "a" else "a"

async def main():
    c = Connection(ice_controlling=(role == "a"), components=1, use_ipv6=False, turn_server=(ip, port),
                   turn_username=user, turn_password=password, turn_transport=transport,
                   transport_policy=TransportPolicy.RELAY)
    await asyncio.wait_for(c.gather_candidates(), 20)
    mine = {"ufrag": c.local_username, "pwd": c.local_password, "candidates": [x.to_sdp() for x in c.local_candidates]}
    tmp = os.path.join(sigdir, role + ".tmp")
    with open(tmp, "w") as f:
        json.dump(mine, f)
    os.rename(tmp, os.path.join(sigdir, role + ".json"))
    path = os.path.join(sigdir, other + ".json")
    deadline = time.time() + 30
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit("no signal from " + other)
        await asyncio.sleep(0.05)
    theirs = json.load(open(path))
    for sdp in theirs["candidates"]:
        await c.add_remote_candidate(Candidate.from_sdp(sdp))
    await c.add_remote_candidate(None)
    c.remote_username, c.remote_password = theirs["ufrag"], theirs["pwd"]
    await asyncio.wait_for(c.connect(), 30)
    if role == "a":
        await c.send(b"ping")
        got = await asyncio.wait_for(c.recv(), 10)
    else:
        got = await asyncio.wait_for(c.recv(), 10)
        await c.send(b"pong")
        await asyncio.sleep(1)
    pair = c._nominated.get(1)
    print("connected", role, "got", got.decode(), "local", mine["candidates"], "pair", pair, flush=True)
    await c.close()

asyncio.run(main())
