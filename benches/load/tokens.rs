//! HS256 tokens minted with the secret the server under test was started with.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

/// One token per user `load-<index>`, valid for an hour: no scenario runs that long.
pub fn mint_for_users(
    secret: &str,
    users: usize,
) -> Result<Vec<String>, jsonwebtoken::errors::Error> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since_epoch| since_epoch.as_secs())
        .unwrap_or(0)
        + 3600;
    let key = EncodingKey::from_secret(secret.as_bytes());
    let header = Header::default();
    (0..users)
        .map(|index| {
            let sub = user_name(index);
            encode(&header, &Claims { sub: &sub, exp }, &key)
        })
        .collect()
}

pub fn user_name(index: usize) -> String {
    format!("load-{index}")
}

pub mod checks {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    pub fn minted_tokens_verify_with_the_same_secret() {
        #[derive(serde::Deserialize)]
        struct Decoded {
            sub: String,
        }
        let tokens = mint_for_users("s3cret", 2).unwrap();
        let verified = decode::<Decoded>(
            &tokens[1],
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::default(),
        )
        .unwrap();
        assert_eq!(verified.claims.sub, "load-1");
        let wrong = decode::<Decoded>(
            &tokens[1],
            &DecodingKey::from_secret(b"other"),
            &Validation::default(),
        );
        assert!(wrong.is_err());
    }
}
