#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from readable literals.

Run from the repository root: python3 fuzz/make_seeds.py. The files are committed; this script
documents how each one was built and regenerates them after a format change.
"""
import base64
import hashlib
import hmac
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def client_frame(opcode, payload, fin=True, masked=True, rsv=0, length_override=None):
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes([first, mask_bit | length])
    elif length < 65536:
        header = bytes([first, mask_bit | 126]) + struct.pack(">H", length)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack(">Q", length)
    if not masked:
        return header + payload
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return header + MASK + body


def ws_seeds():
    # First byte: bits 0-1 pick the message limit (0, 16, 125, 64 KiB), bits 2-7 the chunk pattern.
    big, small, one_byte_chunks = 0x03 | (7 << 2), 0x01 | (3 << 2), 0x03
    text = lambda s, **kw: client_frame(0x1, s.encode(), **kw)
    seeds = {
        "text_hello": bytes([big]) + text("hello"),
        "text_hello_one_byte_reads": bytes([one_byte_chunks]) + text("hello"),
        "json_message": bytes([big]) + text('{"type":"message","id":"c1","text":"I am so happy"}'),
        "fragmented_text": bytes([big]) + client_frame(0x1, b"Hel", fin=False) + client_frame(0x0, b"lo"),
        "ping_between_fragments": bytes([big]) + client_frame(0x1, b"Hel", fin=False)
        + client_frame(0x9, b"p") + client_frame(0x0, b"lo"),
        "ping_pong": bytes([big]) + client_frame(0x9, b"are you there") + client_frame(0xA, b"yes"),
        "binary": bytes([big]) + client_frame(0x2, bytes(range(40))),
        "close_normal": bytes([big]) + client_frame(0x8, struct.pack(">H", 1000) + b"bye"),
        "close_empty": bytes([big]) + client_frame(0x8, b""),
        "close_invalid_code": bytes([big]) + client_frame(0x8, struct.pack(">H", 1005)),
        "close_one_byte": bytes([big]) + client_frame(0x8, b"\x03"),
        "unmasked_text": bytes([big]) + text("hi", masked=False),
        "reserved_bits": bytes([big]) + text("hi", rsv=4),
        "reserved_opcode": bytes([big]) + client_frame(0x3, b"x"),
        "continuation_without_start": bytes([big]) + client_frame(0x0, b"x"),
        "fragmented_control": bytes([big]) + client_frame(0x9, b"x", fin=False),
        "long_ping": bytes([big]) + client_frame(0x9, b"p" * 126),
        "too_big_for_limit": bytes([small]) + text("seventeen bytes!!"),
        "oversized_header_64bit": bytes([big]) + client_frame(0x2, b"", length_override=1 << 40),
        "length_top_bit": bytes([big]) + bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK,
        "invalid_utf8_single": bytes([big]) + client_frame(0x1, b"\xff\xfe"),
        "utf8_split_across_fragments": bytes([big]) + client_frame(0x1, "caf".encode() + b"\xc3", fin=False)
        + client_frame(0x0, b"\xa9"),
        "invalid_utf8_split_across_fragments": bytes([big]) + client_frame(0x1, b"ab\xe2\x82", fin=False)
        + client_frame(0x0, b"\x28"),
        "utf8_cut_at_end": bytes([big]) + client_frame(0x1, b"ab\xe2", fin=False) + client_frame(0x0, b"\x82"),
        "medium_16bit_length": bytes([big]) + client_frame(0x2, b"z" * 300),
        "data_after_close": bytes([big]) + client_frame(0x8, struct.pack(">H", 1001))
        + text("ignored"),
        "fail_then_close": bytes([big]) + text("x", masked=False) + client_frame(0x9, b"late")
        + client_frame(0x8, struct.pack(">H", 1000)),
        "ping_flood": bytes([0x03 | (20 << 2)]) + client_frame(0x9, b"") * 30,
        "random_bytes": bytes([big]) + bytes((i * 73 + 11) % 256 for i in range(64)),
    }
    for name, data in seeds.items():
        write("ws_frames", name, data)


def http_seeds():
    # First byte: bit 0 enables /echo, bit 1 an explicit origin allow-list, bits 2-7 a cut point.
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = ("GET {path} HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key
               + "\r\n{extra}\r\n")
    seeds = {
        "get_root": (0, "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"),
        "head_favicon": (0, "HEAD /favicon.svg HTTP/1.1\r\nHost: h\r\n\r\n"),
        "etag_revalidation": (0, 'GET /index.html HTTP/1.1\r\nHost: h\r\nIf-None-Match: "abc", W/"def"\r\n\r\n'),
        "healthz": (0, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"),
        "metrics_post": (0, "POST /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
        "config": (0, "GET /api/config HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        "dev_token": (0, 'POST /api/dev/token HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n'
                         'Content-Length: 16\r\n\r\n{"user":"alice"}'),
        "pipelined": (0, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /nope HTTP/1.1\r\nHost: h\r\n\r\n"
                         "GET / HTTP/1.0\r\n\r\n"),
        "upgrade": (0, upgrade.format(path="/ws", extra="")),
        "upgrade_bearer": (0, upgrade.format(path="/ws", extra="Authorization: Bearer abc.def.ghi\r\n")),
        "upgrade_query_token": (0, upgrade.format(path="/ws?token=abc%2Edef.ghi&x=1", extra="")),
        "upgrade_same_origin": (0, upgrade.format(path="/ws", extra="Origin: https://chat.example.com\r\n")),
        "upgrade_cross_origin": (0, upgrade.format(path="/ws", extra="Origin: https://evil.example\r\n")),
        "upgrade_listed_origin": (2, upgrade.format(path="/ws", extra="Origin: https://chat.example.com\r\n")),
        "upgrade_echo": (1, upgrade.format(path="/echo", extra="")),
        "upgrade_bad_key": (0, upgrade.format(path="/ws", extra="").replace(key, "short==")),
        "upgrade_version_8": (0, upgrade.format(path="/ws", extra="").replace("Version: 13", "Version: 8")),
        "upgrade_http10": (0, upgrade.format(path="/ws", extra="").replace("HTTP/1.1", "HTTP/1.0")),
        "absolute_form": (0, "GET http://h/index.html?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
        "traversal": (0, "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n"),
        "chunked": (0, "POST /api/dev/token HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "conflicting_length": (0, "POST /api/dev/token HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                                  "Content-Length: 2\r\n\r\nab"),
        "two_hosts": (0, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        "no_host": (0, "GET / HTTP/1.1\r\n\r\n"),
        "delete": (0, "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n"),
        "half_finished": (0, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: webso"),
        "garbage": (0, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    }
    for name, (config, text) in seeds.items():
        write("http_head", name, bytes([config]) + text.encode("latin-1"))
    many_headers = "GET / HTTP/1.1\r\nHost: h\r\n" + "".join(f"X-{i}: v\r\n" for i in range(40)) + "\r\n"
    write("http_head", "too_many_headers", b"\x00" + many_headers.encode())
    long_head = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + "a" * 9000 + "\r\n\r\n"
    write("http_head", "head_too_large", b"\x00" + long_head.encode())


def emotion_seeds():
    texts = {
        "joy": "I am so happy today, this is wonderful!",
        "anger": "I'm furious. This is outrageous and I hate it!!!",
        "fear": "I'm scared something terrible will happen",
        "sadness": "I feel so lonely and sad, I miss her",
        "surprise": "Wow, I did not expect that at all!",
        "disgust": "That is disgusting, gross.",
        "neutral": "The meeting is at 3pm in room 4.",
        "negation": "I am not happy, not at all",
        "intensifiers": "VERY VERY angry!!! extremely upset",
        "emoji": "great job 😀🎉 but 😢",
        "empty": "",
        "whitespace": " \t\n\r ",
        "mixed_scripts": "Ich bin glücklich — je suis triste — 我很高兴",
    }
    for name, text in texts.items():
        write("emotion", name, text.encode())
    write("emotion", "invalid_utf8", b"happy \xff\xfe sad \xc3")
    write("emotion", "long_word", b"a" * 5000)


def base64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_seeds():
    # Must match src/fuzz_targets/jwt.rs.
    now, secret = 1_800_000_000, b"fuzz-secret-0123456789"

    def token(header, claims, key=secret, signature=None):
        message = base64url(json.dumps(header).encode()) + "." + base64url(json.dumps(claims).encode())
        if signature is None:
            signature = base64url(hmac.new(key, message.encode(), hashlib.sha256).digest())
        return message + "." + signature

    valid = {"sub": "alice", "name": "Alice", "exp": now + 60}
    raw = {
        "raw_valid_hs256": token({"alg": "HS256", "typ": "JWT"}, valid),
        "raw_valid_with_iss_aud": token({"alg": "HS256"}, dict(valid, iss="https://idp.example", aud=["x", "emotibot"])),
        "raw_expired": token({"alg": "HS256"}, {"sub": "alice", "exp": now - 31}),
        "raw_within_leeway": token({"alg": "HS256"}, {"sub": "alice", "exp": now - 30}),
        "raw_nbf_future": token({"alg": "HS256"}, {"sub": "alice", "exp": now + 600, "nbf": now + 31}),
        "raw_fractional_exp": token({"alg": "HS256"}, {"sub": "alice", "exp": now + 0.5}),
        "raw_alg_none": token({"alg": "none"}, valid, signature=""),
        "raw_no_sub": token({"alg": "HS256"}, {"exp": now + 60}),
        "raw_sub_number": token({"alg": "HS256"}, {"sub": 7, "exp": now + 60}),
        "raw_two_parts": "eyJhbGciOiJIUzI1NiJ9.e30",
        "raw_garbage": "....",
        "raw_padding": token({"alg": "HS256"}, valid) + "==",
    }
    for name, text in raw.items():
        write("jwt", name, b"\x00" + text.encode())
    structured = {
        # bit 7 set; bits 3-5 header template; bit 6 default claims; bits 0-2 signing method.
        "hs256_signed_with_secret": 0xC0 | (1 << 3) | 0,
        "hs256_unsigned": 0xC0 | (1 << 3) | 1,
        "none_unsigned": 0xC0 | (2 << 3) | 1,
        "rs256_header_public_key_as_hmac": 0xC0 | (4 << 3) | 2,
        "hs256_header_public_key_as_hmac": 0xC0 | (1 << 3) | 2,
        "es256_header_ec_key_as_hmac": 0xC0 | (3 << 3) | 3,
        "es256_signed_with_private_key": 0xC0 | (3 << 3) | 4,
        "hs256_wrong_secret": 0xC0 | (1 << 3) | 5,
        "hs256_other_message": 0xC0 | (1 << 3) | 6,
        "hs256_garbage_signature": 0xC0 | (1 << 3) | 7,
        "lowercase_alg": 0xC0 | (6 << 3) | 0,
        "no_alg": 0xC0 | (7 << 3) | 0,
        "kid_path": 0xC0 | (5 << 3) | 0,
    }
    for name, mode in structured.items():
        write("jwt", name, bytes([mode]))
    # 0x40: the rest goes into an upgrade request, as header lines or (after "?") a query string.
    valid_token = raw["raw_valid_hs256"]
    upgrade = {
        "upgrade_bearer": "Authorization: Bearer " + valid_token,
        "upgrade_bearer_lowercase": "authorization: bearer   " + valid_token + "  ",
        "upgrade_query": "?token=" + valid_token,
        "upgrade_query_percent": "?x=1&token=" + valid_token.replace(".", "%2E", 1),
        "upgrade_query_plus": "?token=" + valid_token[:10] + "+" + valid_token[10:],
        "upgrade_basic": "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "upgrade_none_token": "Authorization: Bearer " + raw["raw_alg_none"],
        "upgrade_both": "?token=" + raw["raw_expired"] + " \r\nAuthorization: Bearer " + valid_token,
    }
    for name, text in upgrade.items():
        write("jwt", name, b"\x40" + text.encode())
    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    claims = json.dumps({"sub": "bob", "exp": now + 5, "nbf": now - 5}).encode()
    write("jwt", "input_header_and_claims", bytes([0x80, len(header)]) + header + claims)
    none_header = json.dumps({"alg": "none"}).encode()
    write("jwt", "input_none_header", bytes([0x81, len(none_header)]) + none_header + claims)


def client_message_seeds():
    # Must match src/fuzz_targets/client_message.rs: op = kind | conn << 3 | arg << 5.
    OPEN, RAW, CANNED, STEP, CLOSED, BINARY, TICK, WRAPPED = range(8)
    names = [
        "auth_alice", "auth_bob", "auth_short", "auth_garbage", "join_lobby", "join_lobby_since_0",
        "join_lobby_since_3", "join_lobby_since_future", "join_own_private", "join_other_private",
        "join_r2", "join_r3", "join_r4", "join_bad_name", "leave_lobby", "leave_private",
        "message_lobby", "message_private", "message_r2", "message_other_private", "typing_lobby_text",
        "typing_private", "ping", "leave_r2",
    ]
    canned = {name: index for index, name in enumerate(names)}

    def op(kind, conn=0, arg=0):
        return bytes([kind | conn << 3 | arg << 5])

    def say(conn, name):
        return op(CANNED, conn) + bytes([canned[name]])

    def step(conn=0, units=20):
        return op(STEP, conn) + bytes([units])

    def raw(conn, text, kind=RAW, arg=0):
        data = text.encode()
        return op(kind, conn, arg) + bytes([len(data)]) + data

    def edited(conn, name, *edits):
        # Each edit: a position as a fraction of 256 of the text's length, and an action byte
        # (high nibble: insert, overwrite, delete or cut; low nibble: what to splice in).
        return op(CANNED, conn, len(edits)) + bytes([canned[name]]) + b"".join(bytes(e) for e in edits)

    alice, bob, short, expired = 4, 5, 6, 7
    seeds = {
        "lobby_chat": op(OPEN, 0, alice) + op(OPEN, 1, bob) + say(0, "join_lobby") + say(1, "join_lobby")
        + say(0, "message_lobby") + say(1, "typing_lobby_text") + step(units=60) + op(CLOSED, 0),
        "auth_by_first_frame_and_bot": op(OPEN, 0) + say(0, "ping") + say(0, "message_private")
        + say(0, "auth_alice") + say(0, "message_private") + step(units=20) + step(units=20),
        "auth_timeout": op(OPEN, 0) + step(units=120),
        "bad_token_frame": op(OPEN, 0) + say(0, "auth_garbage") + say(0, "message_private") + op(CLOSED, 0),
        "token_expiry": op(OPEN, 0, short) + op(STEP, 0, 7) + b"\x00" + say(0, "message_private"),
        "token_refresh_and_other_user": op(OPEN, 0, short) + say(0, "auth_alice") + say(0, "auth_bob"),
        "expired_at_upgrade": op(OPEN, 0, expired) + say(0, "ping"),
        "too_many_rooms": op(OPEN, 0, alice) + say(0, "join_lobby") + say(0, "join_r2") + say(0, "join_r3")
        + say(0, "join_r4") + say(0, "join_bad_name") + say(0, "join_other_private") + say(0, "leave_r2")
        + say(0, "leave_r2") + say(0, "leave_private"),
        "rate_limit": op(OPEN, 0, alice) + say(0, "message_private") * 8 + step(units=40) + say(0, "message_private"),
        "resume": op(OPEN, 0, alice) + say(0, "join_lobby") + op(OPEN, 1, bob) + say(1, "join_lobby")
        + (say(0, "message_lobby") + op(TICK, 0, 7)) * 7 + op(OPEN, 2, bob) + say(2, "join_lobby_since_0")
        + say(2, "join_lobby_since_3") + say(2, "join_lobby_since_future") + op(CLOSED, 1)
        + step(units=250) + op(OPEN, 3, alice) + say(3, "join_lobby_since_3"),
        "two_tabs": op(OPEN, 0, alice) + op(OPEN, 2, alice) + say(0, "message_private") + say(2, "typing_private")
        + say(2, "join_own_private") + step(units=30) + op(CLOSED, 2) + say(0, "message_private"),
        "presence_limit": op(OPEN, 0, alice) + op(OPEN, 1, bob) + op(OPEN, 2, alice) + op(OPEN, 3, bob)
        + say(0, "join_lobby") + say(1, "join_lobby") + say(2, "join_lobby") + say(3, "join_lobby")
        + say(3, "typing_lobby_text") + op(CLOSED, 0) + op(CLOSED, 3) + op(CLOSED, 1),
        "raw_garbage": op(OPEN, 0, alice) + raw(0, "{") + raw(0, "[]") + raw(0, '{"type":5}')
        + raw(0, '{"type":"nope","id":"x"}') + raw(0, '{"type":"message"}') + raw(0, '{"type":"join","room":"lobby","since":-1}')
        + op(BINARY, 0),
        "wrapped_strings": op(OPEN, 0, alice) + say(0, "join_lobby") + raw(0, "so happy", WRAPPED, 0)
        + raw(0, "x" * 70, WRAPPED, 1) + raw(0, "user:bob", WRAPPED, 2) + raw(0, "angry draft", WRAPPED, 3)
        + raw(0, "r-5", WRAPPED, 4) + raw(0, "lobby", WRAPPED, 5) + raw(0, "bad", WRAPPED, 6),
        "edited_messages": op(OPEN, 0, alice) + op(OPEN, 1, bob) + say(0, "join_lobby") + say(1, "join_lobby")
        + edited(0, "message_lobby", (128, 0x06)) + edited(0, "message_lobby", (200, 0x80))
        + edited(1, "message_private", (240, 0x0d)) + edited(1, "message_r2", (90, 0xc0), (60, 0x01))
        + edited(0, "message_lobby", (250, 0xf0)) + edited(0, "message_private", (100, 0x0a), (30, 0x0e)),
        "reuse_key_while_open": op(OPEN, 0, alice) + say(0, "join_lobby") + op(OPEN, 0, bob) + say(0, "message_lobby"),
    }
    for name, data in seeds.items():
        write("client_message", name, data)


if __name__ == "__main__":
    ws_seeds()
    http_seeds()
    emotion_seeds()
    jwt_seeds()
    client_message_seeds()
