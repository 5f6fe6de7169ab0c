//! Deciding what each request gets: a static file, a ready error, an endpoint the application
//! renders, or a WebSocket upgrade.

use std::borrow::Cow;

pub use super::static_files::StaticSource;
pub use super::upgrade::{Upgrade, UpgradeTarget};

use super::request::Request;
use super::response::Response;
use super::static_files::{self, StaticLookup};
use super::upgrade::{accept_upgrade, OriginPolicy};

/// How the router behaves; built once from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub static_source: StaticSource,
    /// Origins (`scheme://host[:port]`) whose pages may open sockets; empty means the page's own
    /// host only.
    pub allowed_origins: Vec<String>,
    /// Whether `/echo` exists (a testing aid for WebSocket conformance suites).
    pub echo: bool,
}

/// What to do with one request.
#[derive(Debug)]
pub enum Route<'a> {
    /// Static files, 304, 400, 403, 404, 405, 426 ...: ready to write.
    Response(Response),
    /// `GET`/`HEAD /healthz`.
    Health,
    /// `GET`/`HEAD /metrics`.
    Metrics,
    /// `GET`/`HEAD /api/config`.
    Config,
    /// `POST /api/dev/token` with its body (the application answers 404 outside dev mode).
    DevToken { body: &'a [u8] },
    /// A valid WebSocket upgrade on `/ws` (or `/echo` when echo is on).
    Upgrade(Upgrade<'a>),
}

/// Application endpoints the router recognises but does not render.
#[derive(Clone, Copy)]
enum Endpoint {
    Health,
    Metrics,
    Config,
    DevToken,
    WebSocket(UpgradeTarget),
}

const READ_METHODS: &str = "GET, HEAD";

#[derive(Debug)]
pub struct Router {
    static_source: StaticSource,
    origin_policy: OriginPolicy,
    echo: bool,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            origin_policy: OriginPolicy::new(&config.allowed_origins),
            static_source: config.static_source,
            echo: config.echo,
        }
    }

    pub fn route<'a>(&self, request: &Request<'a>) -> Route<'a> {
        match self.endpoint(request.path) {
            Some(endpoint) => self.route_endpoint(endpoint, request),
            None => self.route_static(request),
        }
    }

    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        Some(match path {
            "/ws" => Endpoint::WebSocket(UpgradeTarget::Chat),
            "/echo" if self.echo => Endpoint::WebSocket(UpgradeTarget::Echo),
            "/healthz" => Endpoint::Health,
            "/metrics" => Endpoint::Metrics,
            "/api/config" => Endpoint::Config,
            "/api/dev/token" => Endpoint::DevToken,
            _ => return None,
        })
    }

    fn route_endpoint<'a>(&self, endpoint: Endpoint, request: &Request<'a>) -> Route<'a> {
        let is_read = matches!(request.method, "GET" | "HEAD");
        match endpoint {
            Endpoint::Health if is_read => Route::Health,
            Endpoint::Metrics if is_read => Route::Metrics,
            Endpoint::Config if is_read => Route::Config,
            Endpoint::Health | Endpoint::Metrics | Endpoint::Config => {
                method_not_allowed(READ_METHODS)
            }
            Endpoint::DevToken if request.method == "POST" => {
                Route::DevToken { body: request.body }
            }
            Endpoint::DevToken => method_not_allowed("POST"),
            Endpoint::WebSocket(target) if request.method == "GET" => {
                match accept_upgrade(request, target, &self.origin_policy) {
                    Ok(upgrade) => Route::Upgrade(upgrade),
                    Err(response) => Route::Response(response),
                }
            }
            Endpoint::WebSocket(_) => method_not_allowed("GET"),
        }
    }

    fn route_static<'a>(&self, request: &Request<'a>) -> Route<'a> {
        let response = match static_files::lookup(&self.static_source, request.path) {
            StaticLookup::Found(_) if !matches!(request.method, "GET" | "HEAD") => {
                return method_not_allowed(READ_METHODS)
            }
            StaticLookup::Found(file) => {
                static_files::respond(file, request.header("if-none-match"))
            }
            StaticLookup::NotFound => not_found(request.path),
            StaticLookup::BadPath => Response::error(400, "bad_path", "the path is not valid"),
            StaticLookup::Unreadable => {
                Response::error(500, "unreadable_file", "the file could not be read")
            }
        };
        Route::Response(response)
    }
}

fn not_found(path: &str) -> Response {
    let message: Cow<'_, str> = if path.len() <= 200 {
        Cow::Owned(format!("nothing is served at {path}"))
    } else {
        Cow::Borrowed("nothing is served at this path")
    };
    Response::error(404, "not_found", &message)
}

fn method_not_allowed(allow: &'static str) -> Route<'static> {
    Route::Response(
        Response::error(
            405,
            "method_not_allowed",
            "this path does not support the method",
        )
        .with_static_header("Allow", allow),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::asset_meta::strong_etag;
    use crate::http::request::{parse, Parsed};
    use crate::http::static_files::{embedded_asset, CONTENT_SECURITY_POLICY};
    use std::path::PathBuf;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn router(echo: bool) -> Router {
        Router::new(RouterConfig {
            static_source: StaticSource::Embedded,
            allowed_origins: Vec::new(),
            echo,
        })
    }

    /// Routes a literal request and renders the result the way the reactor would.
    fn route_raw<'a>(router: &Router, raw: &'a [u8]) -> Route<'a> {
        match parse(raw) {
            Parsed::Complete { request, .. } => router.route(&request),
            other => panic!("test request must parse: {other:?}"),
        }
    }

    fn response(route: Route<'_>) -> Response {
        match route {
            Route::Response(response) => response,
            other => panic!("expected a ready response, got {other:?}"),
        }
    }

    fn status(router: &Router, raw: &[u8]) -> u16 {
        response(route_raw(router, raw)).status
    }

    fn upgrade_request(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn root_serves_the_index_page_with_csp() {
        let router = router(false);
        let ok = response(route_raw(&router, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        let index = embedded_asset("/index.html").unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.content_type, "text/html; charset=utf-8");
        assert_eq!(ok.body.as_bytes(), index.body);
        assert_eq!(
            ok.header("Content-Security-Policy"),
            Some(CONTENT_SECURITY_POLICY)
        );
        assert_eq!(ok.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(ok.header("Cache-Control"), Some("no-cache"));
    }

    #[test]
    fn head_has_the_get_length_and_no_body() {
        let router = router(false);
        let raw_get = b"GET /favicon.svg HTTP/1.1\r\nHost: h\r\n\r\n";
        let raw_head = b"HEAD /favicon.svg HTTP/1.1\r\nHost: h\r\n\r\n";
        let get = response(route_raw(&router, raw_get));
        let head = response(route_raw(&router, raw_head));
        let (mut get_bytes, mut head_bytes) = (Vec::new(), Vec::new());
        get.write_to(&mut get_bytes, false, true);
        head.write_to(&mut head_bytes, true, true);
        let body_len = embedded_asset("/favicon.svg").unwrap().body.len();
        assert!(body_len > 0);
        assert_eq!(head_bytes.len() + body_len, get_bytes.len());
        assert_eq!(&get_bytes[..head_bytes.len()], head_bytes.as_slice());
        let length_line = format!("Content-Length: {body_len}\r\n");
        assert!(String::from_utf8(head_bytes)
            .unwrap()
            .contains(&length_line));
    }

    #[test]
    fn matching_etag_gets_304() {
        let router = router(false);
        let etag = embedded_asset("/index.html").unwrap().etag;
        let conditional =
            format!("GET /index.html HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\", {etag}\r\n\r\n");
        assert_eq!(status(&router, conditional.as_bytes()), 304);
        let stale = b"GET /index.html HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"stale\"\r\n\r\n";
        assert_eq!(status(&router, stale), 200);
        let star = b"GET /index.html HTTP/1.1\r\nHost: h\r\nIf-None-Match: *\r\n\r\n";
        assert_eq!(status(&router, star), 304);
    }

    #[test]
    fn unknown_paths_are_404_json() {
        let router = router(false);
        let missing = response(route_raw(
            &router,
            b"GET /nope.js HTTP/1.1\r\nHost: h\r\n\r\n",
        ));
        assert_eq!(missing.status, 404);
        assert_eq!(missing.content_type, "application/json");
        let body: serde_json::Value = serde_json::from_slice(missing.body.as_bytes()).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(
            status(&router, b"DELETE /nope HTTP/1.1\r\nHost: h\r\n\r\n"),
            404
        );
        assert_eq!(
            status(&router, b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n"),
            404
        );
        assert_eq!(
            status(
                &router,
                b"GET /%2e%2e/Cargo.toml HTTP/1.1\r\nHost: h\r\n\r\n"
            ),
            400
        );
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        let router = router(false);
        let cases: [(&[u8], &str); 5] = [
            (
                b"POST /index.html HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                "GET, HEAD",
            ),
            (b"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", "GET, HEAD"),
            (b"POST /healthz HTTP/1.1\r\nHost: h\r\n\r\n", "GET, HEAD"),
            (b"GET /api/dev/token HTTP/1.1\r\nHost: h\r\n\r\n", "POST"),
            (b"POST /ws HTTP/1.1\r\nHost: h\r\n\r\n", "GET"),
        ];
        for (raw, allow) in cases {
            let refused = response(route_raw(&router, raw));
            assert_eq!(refused.status, 405, "{}", String::from_utf8_lossy(raw));
            assert_eq!(refused.header("Allow"), Some(allow));
        }
    }

    #[test]
    fn application_endpoints_are_handed_back() {
        let router = router(false);
        assert!(matches!(
            route_raw(&router, b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::Health
        ));
        assert!(matches!(
            route_raw(&router, b"HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::Metrics
        ));
        assert!(matches!(
            route_raw(&router, b"GET /api/config?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Route::Config
        ));
        let raw = b"POST /api/dev/token HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\n\r\n{\"name\":\"a\"}\n";
        match route_raw(&router, raw) {
            Route::DevToken { body } => assert_eq!(body, b"{\"name\":\"a\"}\n"),
            other => panic!("expected DevToken, got {other:?}"),
        }
    }

    #[test]
    fn websocket_upgrades_on_ws_and_echo_only_when_enabled() {
        let with_echo = router(true);
        let without_echo = router(false);
        let chat = upgrade_request("/ws", "");
        match route_raw(&without_echo, chat.as_bytes()) {
            Route::Upgrade(upgrade) => {
                assert_eq!(upgrade.target, UpgradeTarget::Chat);
                assert_eq!(upgrade.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
        let echo = upgrade_request("/echo", "");
        assert!(matches!(
            route_raw(&with_echo, echo.as_bytes()),
            Route::Upgrade(Upgrade {
                target: UpgradeTarget::Echo,
                ..
            })
        ));
        assert_eq!(status(&without_echo, echo.as_bytes()), 404);
    }

    #[test]
    fn websocket_refusals() {
        let router = router(false);
        assert_eq!(
            status(&router, b"GET /ws HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"),
            426
        );
        let foreign = upgrade_request("/ws", "Origin: https://evil.example\r\n");
        assert_eq!(status(&router, foreign.as_bytes()), 403);
        let same_host = upgrade_request("/ws", "Origin: http://localhost:8080\r\n");
        assert!(matches!(
            route_raw(&router, same_host.as_bytes()),
            Route::Upgrade(_)
        ));
        let bad_key = upgrade_request("/ws", "").replace(KEY, "short");
        assert_eq!(status(&router, bad_key.as_bytes()), 400);
        let with_token = upgrade_request("/ws?token=t%20k", "");
        match route_raw(&router, with_token.as_bytes()) {
            Route::Upgrade(upgrade) => assert_eq!(upgrade.token.as_deref(), Some("t k")),
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }

    #[test]
    fn allowed_origins_come_from_the_config() {
        let router = Router::new(RouterConfig {
            static_source: StaticSource::Embedded,
            allowed_origins: vec!["https://chat.example.com".to_string()],
            echo: false,
        });
        let listed = upgrade_request("/ws", "Origin: https://chat.example.com\r\n");
        assert!(matches!(
            route_raw(&router, listed.as_bytes()),
            Route::Upgrade(_)
        ));
        let own_host = upgrade_request("/ws", "Origin: http://localhost:8080\r\n");
        assert_eq!(status(&router, own_host.as_bytes()), 403);
    }

    /// Routing takes whatever the parser accepts; corrupting any byte of an upgrade request must
    /// produce a route, never a panic.
    #[test]
    fn corrupted_requests_route_without_panicking() {
        let router = router(true);
        let original = upgrade_request("/echo?token=a%2Bb", "Origin: http://localhost:8080\r\n");
        let mut routed = 0;
        for position in 0..original.len() {
            for replacement in [0u8, b'%', b'/', b'.', b',', b' ', b'=', 0xff] {
                let mut corrupted = original.clone().into_bytes();
                corrupted[position] = replacement;
                if let Parsed::Complete { request, .. } = parse(&corrupted) {
                    let _ = router.route(&request);
                    routed += 1;
                }
            }
        }
        assert!(
            routed > original.len(),
            "most corruptions still parse: {routed}"
        );
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path =
                std::env::temp_dir().join(format!("emotibot-http-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn disk_mode_serves_files_with_content_etags() {
        let temp = TempDir::new("serve");
        let root = temp.0.join("root");
        std::fs::create_dir_all(root.join("js")).unwrap();
        std::fs::write(root.join("index.html"), b"<p>disk</p>").unwrap();
        std::fs::write(root.join("js/app.js"), b"console.log(1)").unwrap();
        let router = Router::new(RouterConfig {
            static_source: StaticSource::Dir(root.clone()),
            allowed_origins: Vec::new(),
            echo: false,
        });
        let index = response(route_raw(&router, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert_eq!(index.body.as_bytes(), b"<p>disk</p>");
        assert_eq!(
            index.header("ETag"),
            Some(strong_etag(b"<p>disk</p>").as_str())
        );
        assert!(index.header("Content-Security-Policy").is_some());
        let script = response(route_raw(
            &router,
            b"GET /js/app.js HTTP/1.1\r\nHost: h\r\n\r\n",
        ));
        assert_eq!(script.content_type, "text/javascript; charset=utf-8");
        assert_eq!(script.body.as_bytes(), b"console.log(1)");

        // An edit shows up on the next request, with a new ETag.
        std::fs::write(root.join("js/app.js"), b"console.log(2)").unwrap();
        let old_etag = script.header("ETag").unwrap().to_string();
        let conditional =
            format!("GET /js/app.js HTTP/1.1\r\nHost: h\r\nIf-None-Match: {old_etag}\r\n\r\n");
        let edited = response(route_raw(&router, conditional.as_bytes()));
        assert_eq!(edited.status, 200);
        assert_eq!(edited.body.as_bytes(), b"console.log(2)");
        let conditional = format!(
            "GET /js/app.js HTTP/1.1\r\nHost: h\r\nIf-None-Match: {}\r\n\r\n",
            edited.header("ETag").unwrap()
        );
        assert_eq!(status(&router, conditional.as_bytes()), 304);
        assert_eq!(status(&router, b"GET /js HTTP/1.1\r\nHost: h\r\n\r\n"), 404);
        assert_eq!(
            status(&router, b"GET /missing.css HTTP/1.1\r\nHost: h\r\n\r\n"),
            404
        );
    }

    #[test]
    fn disk_mode_never_leaves_the_root() {
        let temp = TempDir::new("traversal");
        let root = temp.0.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(temp.0.join("secret.txt"), b"secret").unwrap();
        std::fs::write(root.join("index.html"), b"ok").unwrap();
        std::os::unix::fs::symlink(temp.0.join("secret.txt"), root.join("link.txt")).unwrap();
        let router = Router::new(RouterConfig {
            static_source: StaticSource::Dir(root),
            allowed_origins: Vec::new(),
            echo: false,
        });
        let attempts: [&[u8]; 7] = [
            b"GET /../secret.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /%2e%2e%2fsecret.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /..%5csecret.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /index.html%00.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /link.txt HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http://h/../secret.txt HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        for raw in attempts {
            let refused = response(route_raw(&router, raw));
            assert!(
                matches!(refused.status, 400 | 404),
                "{} -> {}",
                String::from_utf8_lossy(raw),
                refused.status
            );
            assert_ne!(refused.body.as_bytes(), b"secret");
        }
        assert_eq!(
            status(&router, b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n"),
            200
        );
    }
}
