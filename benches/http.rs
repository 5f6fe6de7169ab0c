//! Per-request costs of the HTTP layer: parsing a browser-sized head, routing it to an embedded
//! static file, and serialising the response.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emotibot::http::{parse, Parsed, Route, Router, RouterConfig, StaticSource};
use std::hint::black_box;

/// What a current browser sends for a page load: 12 headers, about 600 bytes.
const BROWSER_GET: &[u8] = b"GET /index.html HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Sec-Fetch-User: ?1\r\n\
Priority: u=0, i\r\n\r\n";

const UPGRADE: &[u8] = b"GET /ws?token=header.payload.signature HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Origin: http://localhost:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

fn bench(c: &mut Criterion) {
    let router = Router::new(RouterConfig {
        static_source: StaticSource::Embedded,
        allowed_origins: Vec::new(),
        echo: false,
    });
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));

    group.bench_function("parse_browser_get", |b| {
        b.iter(|| matches!(parse(black_box(BROWSER_GET)), Parsed::Complete { .. }))
    });

    let mut out = Vec::with_capacity(4096);
    group.bench_function("parse_route_write_static", |b| {
        b.iter(|| {
            out.clear();
            if let Parsed::Complete { request, .. } = parse(black_box(BROWSER_GET)) {
                if let Route::Response(response) = router.route(&request) {
                    response.write_to(&mut out, request.is_head(), request.keep_alive());
                }
            }
            out.len()
        })
    });

    group.bench_function("parse_route_upgrade", |b| {
        b.iter(|| match parse(black_box(UPGRADE)) {
            Parsed::Complete { request, .. } => matches!(router.route(&request), Route::Upgrade(_)),
            _ => false,
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
