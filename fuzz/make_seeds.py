#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from readable literals.

Run from the repository root: python3 fuzz/make_seeds.py. The files are committed; this script
documents how each one was built and regenerates them after a format change.
"""
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


if __name__ == "__main__":
    ws_seeds()
    http_seeds()
    emotion_seeds()
