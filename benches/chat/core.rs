// The chat core both chat benches drive (`benches/chat.rs` in time, `benches/chat_instructions.rs`
// in instructions), included by both so they measure the same set-up and the same message.

const UNIX_AT_ZERO: u64 = 1_800_000_000_000;
const MESSAGE: &str = r#"{"type":"message","id":"c1","text":"I can't believe the demo worked on the first try, I'm thrilled"}"#;

/// A chat core with the bot off and no rate limit: the work per frame and nothing else.
fn core() -> ChatCore {
    let auth = Authenticator::new(AuthConfig {
        key: KeyConfig::Hs256(b"chat-bench-secret".to_vec()),
        issuer: None,
        audience: None,
    })
    .expect("a non-empty secret is a valid key");
    let config = ChatConfig {
        bot: false,
        msg_rate: 0,
        ..ChatConfig::default()
    };
    ChatCore::new(config, auth, UNIX_AT_ZERO)
}

/// A day-long token's claims for `sub`.
fn claims(sub: &str) -> Claims {
    Claims {
        sub: sub.to_owned(),
        name: None,
        exp: UNIX_AT_ZERO / 1000 + 86_400,
    }
}
