#!/usr/bin/env python3
"""Independent recomputation of docs/test-vectors/key_schedule.json from the text of
PROTOCOL.md §5.4 and §6 (hashlib/hmac only). Exits non-zero on any mismatch."""
import hashlib, hmac, json, sys

def sha256(b): return hashlib.sha256(b).digest()
def extract(salt, ikm): return hmac.new(salt, ikm, hashlib.sha256).digest()
def expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); out += t; i += 1
    return out[:n]
def expand_label(secret, label, ctx, n):
    L = b"jsp1 " + label.encode()
    info = n.to_bytes(2, "big") + bytes([len(L)]) + L + bytes([len(ctx)]) + ctx
    return expand(secret, info, n)
def derive(secret, label, th): return expand_label(secret, label, th, 32)
def keys(secret, hp=True):
    d = {"key": expand_label(secret, "key", b"", 32).hex(), "iv": expand_label(secret, "iv", b"", 12).hex()}
    if hp: d["hp"] = expand_label(secret, "hp", b"", 32).hex()
    return d
def fin(base, th): return hmac.new(expand_label(base, "finished", b"", 32), th, hashlib.sha256).digest()

v = json.load(open(sys.argv[1]))
errors = 0
def check(name, got, want):
    global errors
    if got != want: errors += 1; print("MISMATCH", name, got, want)

salt = sha256(b"JetStreamProto v1 initial salt")
ini = v["initial"]
check("initial_salt", salt.hex(), ini["initial_salt"])
isec = extract(salt, bytes.fromhex(ini["original_dcid"]))
check("initial_secret", isec.hex(), ini["initial_secret"])
for side, label in [("client_initial", "client in"), ("server_initial", "server in")]:
    s = expand_label(isec, label, b"", 32)
    check(side, dict(secret=s.hex(), **keys(s)), ini[side])

inp = v["inputs"]
ss = bytes(range(64)); check("shared_secret", ss.hex(), inp["shared_secret"])
psk = sha256(inp["psk"]["sha256_of"].encode()); check("psk", psk.hex(), inp["psk"]["value"])
empty = sha256(b""); check("empty", empty.hex(), inp["empty_transcript_hash"])
th = {}
for k, t in inp["transcript_hashes"].items():
    th[k] = sha256(t["sha256_of"].encode()); check(k, th[k].hex(), t["hash"])
nonce = bytes.fromhex(inp["ticket_nonce"])

zeros = bytes(32)
for sch, use_psk in zip(v["schedules"], [False, True]):
    o = {"name": sch["name"], "psk": psk.hex() if use_psk else None}
    early = extract(zeros, psk if use_psk else zeros); o["early_secret"] = early.hex()
    secrets = []
    if use_psk:
        bk = derive(early, "res binder", empty); o["binder_key"] = bk.hex()
        o["binder_finished_key"] = expand_label(bk, "finished", b"", 32).hex()
        o["binder"] = fin(bk, th["truncated_client_hello"]).hex()
        ce = derive(early, "c e traffic", th["client_hello"]); o["client_early_traffic"] = ce.hex()
        secrets.append(("client_early_traffic", ce, True))
    de = derive(early, "derived", empty); o["derived_early"] = de.hex()
    hs = extract(de, ss); o["handshake_secret"] = hs.hex()
    chs = derive(hs, "c hs traffic", th["client_hello_to_server_hello"])
    shs = derive(hs, "s hs traffic", th["client_hello_to_server_hello"])
    o["client_handshake_traffic"] = chs.hex(); o["server_handshake_traffic"] = shs.hex()
    o["server_finished_key"] = expand_label(shs, "finished", b"", 32).hex()
    o["server_verify_data"] = fin(shs, th["before_server_finished"]).hex()
    o["client_finished_key"] = expand_label(chs, "finished", b"", 32).hex()
    o["client_verify_data"] = fin(chs, th["before_client_finished"]).hex()
    dh = derive(hs, "derived", empty); o["derived_handshake"] = dh.hex()
    ms = extract(dh, zeros); o["master_secret"] = ms.hex()
    cap = derive(ms, "c ap traffic", th["client_hello_to_server_finished"])
    sap = derive(ms, "s ap traffic", th["client_hello_to_server_finished"])
    cap1 = expand_label(cap, "ku", b"", 32); sap1 = expand_label(sap, "ku", b"", 32)
    o.update(client_app_traffic_0=cap.hex(), server_app_traffic_0=sap.hex(),
             client_app_traffic_1=cap1.hex(), server_app_traffic_1=sap1.hex())
    rm = derive(ms, "res master", th["client_hello_to_client_finished"]); o["resumption_master"] = rm.hex()
    o["resumption_psk"] = expand_label(rm, "resumption", nonce, 32).hex()
    secrets += [("client_handshake_traffic", chs, True), ("server_handshake_traffic", shs, True),
                ("client_app_traffic_0", cap, True), ("server_app_traffic_0", sap, True),
                ("client_app_traffic_1", cap1, False), ("server_app_traffic_1", sap1, False)]
    # Both suites have Nk = 32, so key/iv/hp are identical byte strings per suite.
    o["packet_keys"] = {n: {"aes_256_gcm": keys(s, hp), "chacha20_poly1305": keys(s, hp)} for n, s, hp in secrets}
    check(sch["name"], o, sch)

n = sum(1 for _ in json.dumps(v).split('"') )
print("errors:", errors)
sys.exit(1 if errors else 0)
