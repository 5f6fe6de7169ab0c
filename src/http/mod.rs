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
