//! Placeholder until the chat core lands: greets and echoes. The real protocol replaces this file.
pub mod auth {
    pub enum KeyConfig {
        Hs256(Vec<u8>),
        PublicKeyPem {
            algorithm: jsonwebtoken::Algorithm,
            pem: Vec<u8>,
        },
    }
    pub struct AuthConfig {
        pub key: KeyConfig,
        pub issuer: Option<String>,
        pub audience: Option<String>,
    }
    pub struct Claims {
        pub sub: String,
        pub name: Option<String>,
        pub exp: u64,
    }
    #[derive(Debug)]
    pub struct AuthError;
    impl std::fmt::Display for AuthError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "bad token")
        }
    }
    pub struct Authenticator;
    impl Authenticator {
        pub fn new(_c: AuthConfig) -> Result<Authenticator, String> {
            Ok(Authenticator)
        }
        pub fn verify(&self, _t: &str, _n: u64) -> Result<Claims, AuthError> {
            Err(AuthError)
        }
        pub fn mint(
            &self,
            _s: &str,
            _n: Option<&str>,
            _t: u64,
            _now: u64,
        ) -> Result<String, String> {
            Ok("x".into())
        }
    }
}
pub type ConnId = usize;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Essential,
    Droppable,
}
pub trait Outbox {
    fn send(&mut self, conn: ConnId, json: &str, delivery: Delivery);
    fn close(&mut self, conn: ConnId, code: u16, reason: &str);
}
pub struct ChatConfig {
    pub typing_timeout_ms: u64,
    pub bot: bool,
    pub bot_reply_delay_ms: u64,
    pub msg_rate: u32,
    pub msg_burst: u32,
    pub max_text_chars: usize,
    pub max_rooms_per_conn: usize,
    pub ping_interval_ms: u64,
    pub auth_timeout_ms: u64,
}
impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            typing_timeout_ms: 2000,
            bot: true,
            bot_reply_delay_ms: 700,
            msg_rate: 20,
            msg_burst: 40,
            max_text_chars: 4000,
            max_rooms_per_conn: 32,
            ping_interval_ms: 25000,
            auth_timeout_ms: 5000,
        }
    }
}
pub struct ChatStats {
    pub sessions: usize,
    pub rooms: usize,
    pub timers: usize,
}
pub struct ChatCore {
    auth: auth::Authenticator,
}
impl ChatCore {
    pub fn new(_c: ChatConfig, auth: auth::Authenticator, _u: u64) -> ChatCore {
        ChatCore { auth }
    }
    pub fn open(
        &mut self,
        conn: ConnId,
        _c: Option<auth::Claims>,
        _now: u64,
        out: &mut impl Outbox,
    ) {
        out.send(conn, "{\"type\":\"hello\"}", Delivery::Essential)
    }
    pub fn text(&mut self, conn: ConnId, text: &str, _now: u64, out: &mut impl Outbox) {
        out.send(conn, text, Delivery::Essential)
    }
    pub fn binary(&mut self, _conn: ConnId, _d: &[u8], _now: u64, _out: &mut impl Outbox) {}
    pub fn closed(&mut self, _conn: ConnId, _now: u64, _out: &mut impl Outbox) {}
    pub fn next_deadline(&self) -> Option<u64> {
        None
    }
    pub fn expire(&mut self, _now: u64, _out: &mut impl Outbox) {}
    pub fn authenticator(&self) -> &auth::Authenticator {
        &self.auth
    }
    pub fn stats(&self) -> ChatStats {
        ChatStats {
            sessions: 0,
            rooms: 0,
            timers: 0,
        }
    }
}
