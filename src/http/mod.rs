//! Sans-IO HTTP/1.1: parsing request heads, routing, static files and the WebSocket upgrade.
//!
//! Nothing here touches a socket. The reactor feeds bytes to [`parse`], hands the request to
//! [`Router::route`], and writes what comes back:
//!
//! - [`request`]: one request from the front of a buffer, with the head, header and body limits.
//! - [`response`]: the response value type and its serialisation.
//! - [`router`]: which endpoint, file or upgrade a request gets.
//! - [`static_files`]: embedded or on-disk files, ETags and revalidation.
//! - [`upgrade`]: the WebSocket opening handshake and the `Origin` policy.
//!
//! How a connection drives it (pipelined requests are answered in order):
//!
//! ```
//! use emotibot::http::{parse, write_switching_protocols, Parsed, Route, Router, RouterConfig, StaticSource};
//!
//! let router = Router::new(RouterConfig {
//!     static_source: StaticSource::Embedded,
//!     allowed_origins: Vec::new(),
//!     echo: false,
//! });
//! let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nHEAD /favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n";
//! let mut out = Vec::new();
//! loop {
//!     match parse(input) {
//!         // Keep the unparsed bytes and wait for more (or for the handshake deadline).
//!         Parsed::Partial => break,
//!         // The framing is broken: answer, then close the connection.
//!         Parsed::Invalid(response) => {
//!             response.write_to(&mut out, false, false);
//!             break;
//!         }
//!         Parsed::Complete { request, len } => {
//!             match router.route(&request) {
//!                 Route::Response(response) => {
//!                     response.write_to(&mut out, request.is_head(), request.keep_alive())
//!                 }
//!                 // Bytes after `len` already belong to the WebSocket.
//!                 Route::Upgrade(upgrade) => write_switching_protocols(&mut out, &upgrade.accept_key),
//!                 // Health, Metrics, Config and DevToken are rendered by the application.
//!                 _ => {}
//!             }
//!             input = &input[len..];
//!         }
//!     }
//! }
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(input.is_empty());
//! ```

pub mod asset_meta;
pub mod percent;
pub mod request;
pub mod response;
pub mod router;
pub mod static_files;
pub mod upgrade;

pub use request::{parse, Parsed, Request, MAX_BODY_BYTES, MAX_HEADERS, MAX_HEAD_BYTES};
pub use response::{write_switching_protocols, Body, Response};
pub use router::{Route, Router, RouterConfig, StaticSource, Upgrade, UpgradeTarget};
