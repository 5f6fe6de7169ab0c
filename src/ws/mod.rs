//! WebSocket (RFC 6455) without I/O: the frame codec and the per-connection state machine.
//!
//! - [`frame`]: zero-copy header parsing, in-place unmasking, encoding of server frames.
//! - [`connection`]: [`WsConnection`], which turns client bytes into messages and replies.
//!
//! The HTTP upgrade handshake lives with the HTTP code; this module starts after it.

pub mod connection;
pub mod frame;

pub use connection::{Event, Poll, State, WsConnection};
pub use frame::{FrameError, FrameHeader, OpCode};
