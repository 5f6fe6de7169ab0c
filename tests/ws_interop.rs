//! Interoperability of `emotibot::ws` with an independent WebSocket client (tungstenite) over a
//! real TCP socket. A minimal blocking echo shell drives `WsConnection` the way the reactor does:
//! append what was read, poll until no progress, drop consumed bytes, write `out`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use emotibot::ws::frame::{write_binary, write_text};
use emotibot::ws::{Event, State, WsConnection};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::{Bytes, Message, WebSocket};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the upgrade request and answers it with a 101; returns bytes read past the head.
fn accept_upgrade(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let read = stream.read(&mut chunk).expect("read upgrade request");
        assert!(read > 0, "client left during the handshake");
        received.extend_from_slice(&chunk[..read]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .expect("request carries Sec-WebSocket-Key");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).expect("write 101");
    received.split_off(head_end)
}

/// Serves one connection, echoing every message; returns the close code it ended with.
fn echo_server(max_message_bytes: usize) -> (u16, JoinHandle<Option<u16>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut pending = accept_upgrade(&mut stream);
        let mut connection = WsConnection::new(max_message_bytes);
        let mut out = Vec::new();
        // Small reads so that frames arrive in pieces, as they do over a real network.
        let mut chunk = [0u8; 1000];
        loop {
            loop {
                let poll = connection.poll(&mut pending, &mut out);
                let progressed = poll.consumed > 0 || poll.event.is_some();
                let consumed = poll.consumed;
                match poll.event {
                    Some(Event::Text(text)) => write_text(&mut out, &text),
                    Some(Event::Binary(data)) => write_binary(&mut out, &data),
                    None => {}
                }
                pending.drain(..consumed);
                if !progressed {
                    break;
                }
            }
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    break;
                }
                out.clear();
            }
            if connection.state() == State::Closed {
                let _ = stream.shutdown(Shutdown::Write);
                break;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(read) => pending.extend_from_slice(&chunk[..read]),
            }
        }
        connection.close_code()
    });
    (port, server)
}

fn connect(port: u16) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let url = format!("ws://127.0.0.1:{port}/echo");
    let (socket, _) = tungstenite::client::client(url.as_str(), stream).expect("handshake");
    socket
}

/// Reads until the server's close frame arrives; returns its code.
fn read_close_code(socket: &mut WebSocket<TcpStream>) -> Option<u16> {
    loop {
        match socket.read() {
            Ok(Message::Close(frame)) => return frame.map(|close| u16::from(close.code)),
            Ok(_) => continue,
            Err(error) => panic!("connection ended without a close frame: {error}"),
        }
    }
}

#[test]
fn echoes_text_binary_and_large_messages() {
    let (port, server) = echo_server(4 << 20);
    let mut socket = connect(port);
    socket.send(Message::text("Hello, κόσμε 😀")).expect("send");
    assert_eq!(
        socket.read().expect("read"),
        Message::text("Hello, κόσμε 😀")
    );
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .expect("send");
    assert_eq!(
        socket.read().expect("read"),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    // 1 MiB: a 64-bit length, and a payload that arrives over many reads.
    let large: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    socket.send(Message::binary(large.clone())).expect("send");
    assert_eq!(socket.read().expect("read"), Message::binary(large));
    socket.close(None).expect("close");
    assert_eq!(read_close_code(&mut socket), None);
    assert_eq!(server.join().expect("server thread"), Some(1005));
}

#[test]
fn answers_ping_with_pong_and_echoes_close_code() {
    let (port, server) = echo_server(1024);
    let mut socket = connect(port);
    socket
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .expect("ping");
    assert_eq!(
        socket.read().expect("read"),
        Message::Pong(Bytes::from_static(b"are you there"))
    );
    socket
        .close(Some(CloseFrame {
            code: 4001.into(),
            reason: "done".into(),
        }))
        .expect("close");
    assert_eq!(read_close_code(&mut socket), Some(4001));
    assert_eq!(server.join().expect("server thread"), Some(4001));
}

#[test]
fn reassembles_fragments_with_a_ping_inside() {
    let (port, server) = echo_server(1024);
    let mut socket = connect(port);
    // "€" (e2 82 ac) is split between the first two fragments.
    let frames = [
        Frame::message(b"price: \xe2".to_vec(), OpCode::Data(Data::Text), false),
        Frame::ping(b"mid".to_vec()),
        Frame::message(b"\x82\xac".to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(b"5".to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        socket.write(Message::Frame(frame)).expect("write frame");
    }
    socket.flush().expect("flush");
    assert_eq!(
        socket.read().expect("read"),
        Message::Pong(Bytes::from_static(b"mid"))
    );
    assert_eq!(socket.read().expect("read"), Message::text("price: €5"));
    socket.close(None).expect("close");
    assert_eq!(read_close_code(&mut socket), None);
    assert!(server.join().expect("server thread").is_some());
}

#[test]
fn too_big_message_is_refused_with_1009() {
    let (port, server) = echo_server(1024);
    let mut socket = connect(port);
    socket.send(Message::binary(vec![7u8; 2000])).expect("send");
    assert_eq!(read_close_code(&mut socket), Some(1009));
    // Sends tungstenite's close reply, which completes the server's handshake.
    let _ = socket.flush();
    assert_eq!(server.join().expect("server thread"), Some(1009));
}

#[test]
fn invalid_utf8_text_is_refused_with_1007() {
    let (port, server) = echo_server(1024);
    let mut socket = connect(port);
    let frame = Frame::message(b"ok \xff".to_vec(), OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(frame)).expect("send");
    assert_eq!(read_close_code(&mut socket), Some(1007));
    let _ = socket.flush();
    assert_eq!(server.join().expect("server thread"), Some(1007));
}
