//! `jwt`: arbitrary tokens, and tokens assembled from arbitrary headers, claims and signatures,
//! into [`Authenticator::verify`] under four configurations: HS256, HS256 with issuer and
//! audience, ES256 and RS256.
//!
//! Input layout, by the top two bits of the first byte: `00`, the rest is the token text; `01`,
//! the rest is appended to the head of a WebSocket upgrade request (header lines, or a query
//! string when it starts with `?`), and whatever token the HTTP layer extracts from it
//! (`Authorization: Bearer`, `?token=`) is verified; `1x`, the first byte picks a header template
//! (or a header from the input), a signing method and a claims template, the rest supplies the
//! header and claims JSON, and the token is assembled and signed here. Invariants checked:
//! - no panic;
//! - an accepted token is re-verified independently: three base64url parts, a header naming the
//!   configured algorithm, a signature that checks with the configured key (for HS256 recomputed
//!   here), `sub`, `name`, `exp` and `nbf` as returned and within the leeway, issuer and audience
//!   when configured;
//! - of the assembled tokens, only those signed with the configured secret or private key are
//!   accepted: never an unsigned (`alg: none`) token, never one signed with another secret, and
//!   never an HS256 token under a public-key configuration, in particular one whose HMAC secret is
//!   the server's public key (algorithm confusion). The RS256 configuration has no private key
//!   here, so it must accept nothing at all.

use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::chat::auth::{AuthConfig, AuthError, Authenticator, Claims, KeyConfig, LEEWAY_S};
use crate::http::request::{parse, Parsed};
use crate::http::router::{Route, Router, RouterConfig, StaticSource};

/// The clock every verification runs at (unix seconds).
const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"fuzz-secret-0123456789";
const WRONG_SECRET: &[u8] = b"fuzz-secret-0123456788";
const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "emotibot";

/// A P-256 key pair made for this target only (openssl ecparam -name prime256v1 -genkey).
const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQga+Muw8g2bpiBesAZ
aIizpBYzF89rO5MQmbNkauDG9CKhRANCAATApOtimvu4kHEl3vAz7T+HN1cQLova
ZLTArGMwBnCTsdk6ACeg7H4pAZdE1D+mJbmOzr9HhHlnQiieSyz7s0S1
-----END PRIVATE KEY-----
";
const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwKTrYpr7uJBxJd7wM+0/hzdXEC6L
2mS0wKxjMAZwk7HZOgAnoOx+KQGXRNQ/piW5js6/R4R5Z0Ionkss+7NEtQ==
-----END PUBLIC KEY-----
";
/// An RSA public key whose private half was thrown away: no valid RS256 token can exist.
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvfILodJSsAhuBsFmXI2M
VgY3ynIFEKM6j5v+NmNA6BjwoS0OZ02yE72W2Ccb16MzPGVcLSE4cp3+Git5yfPN
N6MeRsGDdLcUTTmE1V8L2dXOBJJsBqGTjES6Z9+ycWR2Ql7WkUaOEamWjakcTYed
fjdmTPPBPn8n1Kohbo1TYUcVY0DO2l6brzcfFmOPhim7Ti+YX6gKlpfnOJs/NbKP
rL6U8xRYY78pvNAYBcua30TQG2lUYlY4et3iZNhHAXEdzlSPyeOIhIO/YPOz0hLT
wMjD/jzUOJO9hDFQPgrtvm5Wgb8mfYU8092T56lk/f+uFOX4djp/7lvVjBEaZqwz
mwIDAQAB
-----END PUBLIC KEY-----
";

/// Header templates the first byte can pick; index 0 takes the header from the input.
const HEADERS: [&str; 8] = [
    "",
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"none","typ":"JWT"}"#,
    r#"{"alg":"ES256","typ":"JWT"}"#,
    r#"{"alg":"RS256","typ":"JWT"}"#,
    r#"{"alg":"HS256","kid":"../../dev/null"}"#,
    r#"{"alg":"hs256"}"#,
    r#"{"typ":"JWT"}"#,
];

/// How an assembled token is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signing {
    /// HMAC-SHA256 with the configured secret: the one legitimate HS256 signature.
    Secret,
    /// No signature at all, as with `alg: none`.
    Empty,
    /// HMAC-SHA256 keyed with the RSA public key PEM: algorithm confusion against RS256.
    RsaPublicKeyAsSecret,
    /// HMAC-SHA256 keyed with the EC public key PEM: algorithm confusion against ES256.
    EcPublicKeyAsSecret,
    /// ECDSA P-256 with the private key: the one legitimate ES256 signature.
    EcPrivateKey,
    /// HMAC-SHA256 with a secret one byte off.
    WrongSecret,
    /// The configured secret over a different message.
    SecretOverOtherMessage,
    /// A signature that is not even base64url.
    Garbage,
}

const SIGNINGS: [Signing; 8] = [
    Signing::Secret,
    Signing::Empty,
    Signing::RsaPublicKeyAsSecret,
    Signing::EcPublicKeyAsSecret,
    Signing::EcPrivateKey,
    Signing::WrongSecret,
    Signing::SecretOverOtherMessage,
    Signing::Garbage,
];

/// One verifier under test and what it takes to re-check its verdicts.
struct Verifier {
    name: &'static str,
    authenticator: Authenticator,
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// The signing method whose tokens this configuration may accept, if any.
    legitimate: Option<Signing>,
    checks_issuer_and_audience: bool,
}

fn verifiers() -> &'static [Verifier] {
    static VERIFIERS: OnceLock<Vec<Verifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let make = |key: KeyConfig, with_claims_checks: bool| {
            Authenticator::new(AuthConfig {
                key,
                issuer: with_claims_checks.then(|| ISSUER.to_owned()),
                audience: with_claims_checks.then(|| AUDIENCE.to_owned()),
            })
            .unwrap_or_else(|error| panic!("fuzz fixture key rejected: {error}"))
        };
        let public_key = |algorithm, pem: &str| KeyConfig::PublicKeyPem {
            algorithm,
            pem: pem.as_bytes().to_vec(),
        };
        let pem_key = |result: Result<DecodingKey, _>| {
            result.unwrap_or_else(|error| panic!("fuzz fixture PEM rejected: {error}"))
        };
        vec![
            Verifier {
                name: "HS256",
                authenticator: make(KeyConfig::Hs256(SECRET.to_vec()), false),
                algorithm: Algorithm::HS256,
                decoding: DecodingKey::from_secret(SECRET),
                legitimate: Some(Signing::Secret),
                checks_issuer_and_audience: false,
            },
            Verifier {
                name: "HS256 with issuer and audience",
                authenticator: make(KeyConfig::Hs256(SECRET.to_vec()), true),
                algorithm: Algorithm::HS256,
                decoding: DecodingKey::from_secret(SECRET),
                legitimate: Some(Signing::Secret),
                checks_issuer_and_audience: true,
            },
            Verifier {
                name: "ES256",
                authenticator: make(public_key(Algorithm::ES256, EC_PUBLIC_PEM), false),
                algorithm: Algorithm::ES256,
                decoding: pem_key(DecodingKey::from_ec_pem(EC_PUBLIC_PEM.as_bytes())),
                legitimate: Some(Signing::EcPrivateKey),
                checks_issuer_and_audience: false,
            },
            Verifier {
                name: "RS256",
                authenticator: make(public_key(Algorithm::RS256, RSA_PUBLIC_PEM), false),
                algorithm: Algorithm::RS256,
                decoding: pem_key(DecodingKey::from_rsa_pem(RSA_PUBLIC_PEM.as_bytes())),
                legitimate: None,
                checks_issuer_and_audience: false,
            },
        ]
    })
}

pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (token, signing) = match mode >> 6 {
        0 => (String::from_utf8_lossy(rest).into_owned(), None),
        1 => match token_from_upgrade(rest) {
            Some(token) => (token, None),
            None => return,
        },
        _ => {
            let signing = SIGNINGS[usize::from(mode & 0x07)];
            (assemble_token(mode, rest, signing), Some(signing))
        }
    };
    for verifier in verifiers() {
        let Ok(claims) = verifier.authenticator.verify(&token, NOW) else {
            continue;
        };
        if let Some(signing) = signing {
            assert_eq!(
                Some(signing),
                verifier.legitimate,
                "{} accepted a token signed with {signing:?}: {token}",
                verifier.name
            );
        }
        recheck_accepted(verifier, &token, &claims);
    }
    // Verification must not depend on anything but the token and the clock.
    if let Some(verifier) = verifiers().first() {
        let first = verifier.authenticator.verify(&token, NOW);
        let second = verifier.authenticator.verify(&token, NOW);
        assert_eq!(first, second, "verification is not deterministic");
        if let Err(AuthError::Malformed(detail)) = &first {
            assert!(!detail.is_empty(), "a malformed token got no explanation");
        }
    }
}

/// The token the HTTP layer takes from an upgrade request built around `extra`, as the reactor
/// would pass it to the authenticator.
fn token_from_upgrade(extra: &[u8]) -> Option<String> {
    let (query, headers) = match extra.strip_prefix(b"?") {
        Some(query) => {
            let end = query
                .iter()
                .position(|&byte| byte == b' ' || byte == b'\r')
                .unwrap_or(query.len());
            (&query[..end], &query[end..])
        }
        None => (&b""[..], extra),
    };
    let mut request = b"GET /ws".to_vec();
    if !query.is_empty() {
        request.push(b'?');
        request.extend_from_slice(query);
    }
    request.extend_from_slice(
        b" HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n\r\n");
    let Parsed::Complete { request, .. } = parse(&request) else {
        return None;
    };
    let router = Router::new(RouterConfig {
        static_source: StaticSource::Embedded,
        allowed_origins: Vec::new(),
        echo: false,
    });
    match router.route(&request) {
        Route::Upgrade(upgrade) => upgrade.token.map(|token| {
            assert!(!token.is_empty(), "an empty token was extracted");
            token.into_owned()
        }),
        _ => None,
    }
}

/// Builds `header.claims.signature` from the input. Bits 3-5 of `mode` pick the header template
/// (0: the input's), bit 6 replaces empty claims with a valid set, and the first input byte says
/// where the header ends and the claims begin.
fn assemble_token(mode: u8, rest: &[u8], signing: Signing) -> String {
    let (split, json) = match rest.split_first() {
        Some((&split, json)) => (usize::from(split).min(json.len()), json),
        None => (0, rest),
    };
    let template = HEADERS[usize::from((mode >> 3) & 0x07)];
    let (header, claims) = if template.is_empty() {
        json.split_at(split)
    } else {
        (template.as_bytes(), json)
    };
    let default_claims = format!(
        r#"{{"sub":"fuzz","exp":{},"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#,
        NOW + 60
    );
    let claims = if claims.is_empty() && mode & 0x40 != 0 {
        default_claims.as_bytes()
    } else {
        claims
    };
    let message = format!("{}.{}", base64url_encode(header), base64url_encode(claims));
    let hmac = |secret: &[u8], signed: &str| {
        jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap_or_default()
    };
    let signature = match signing {
        Signing::Secret => hmac(SECRET, &message),
        Signing::Empty => String::new(),
        Signing::RsaPublicKeyAsSecret => hmac(RSA_PUBLIC_PEM.as_bytes(), &message),
        Signing::EcPublicKeyAsSecret => hmac(EC_PUBLIC_PEM.as_bytes(), &message),
        Signing::EcPrivateKey => match EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()) {
            Ok(key) => jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::ES256)
                .unwrap_or_default(),
            Err(error) => panic!("fuzz fixture EC private key rejected: {error}"),
        },
        Signing::WrongSecret => hmac(WRONG_SECRET, &message),
        Signing::SecretOverOtherMessage => hmac(SECRET, &format!("{message}x")),
        Signing::Garbage => "%%not-base64%%".to_owned(),
    };
    format!("{message}.{signature}")
}

/// Re-derives, without the authenticator, everything an accepted token must satisfy.
fn recheck_accepted(verifier: &Verifier, token: &str, claims: &Claims) {
    let name = verifier.name;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        panic!(
            "{name} accepted a token with {} parts: {token}",
            parts.len()
        );
    };
    let header_json: HeaderView = decode_part(header)
        .unwrap_or_else(|| panic!("{name} accepted an undecodable header: {token}"));
    let expected_alg = format!("{:?}", verifier.algorithm);
    assert_eq!(
        header_json.alg.as_ref().and_then(Value::as_str),
        Some(expected_alg.as_str()),
        "{name} accepted a token whose header names another algorithm: {token}"
    );
    let signed = format!("{header}.{payload}");
    assert_eq!(
        jsonwebtoken::crypto::verify(
            signature,
            signed.as_bytes(),
            &verifier.decoding,
            verifier.algorithm
        )
        .ok(),
        Some(true),
        "{name} accepted a token whose signature does not verify: {token}"
    );
    if verifier.algorithm == Algorithm::HS256 {
        let recomputed = jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .ok()
        .and_then(|expected| base64url_decode(&expected));
        assert_eq!(
            base64url_decode(signature),
            recomputed,
            "{name} accepted a signature other than the HMAC of the token: {token}"
        );
    }
    let payload_json: ClaimsView = decode_part(payload)
        .unwrap_or_else(|| panic!("{name} accepted undecodable claims: {token}"));
    let sub = payload_json.sub.as_ref().and_then(Value::as_str);
    assert_eq!(
        sub,
        Some(claims.sub.as_str()),
        "{name}: sub differs: {token}"
    );
    assert!(
        !claims.sub.is_empty() && claims.sub.len() <= crate::chat::auth::MAX_SUB_BYTES,
        "{name} accepted a sub of {} bytes",
        claims.sub.len()
    );
    let name_claim = payload_json
        .name
        .as_ref()
        .and_then(Value::as_str)
        .filter(|display_name| !display_name.is_empty());
    assert_eq!(name_claim, claims.name.as_deref(), "{name}: name differs");
    let exp = payload_json
        .exp
        .as_ref()
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{name} accepted a token without a numeric exp: {token}"));
    assert_eq!(
        exp.floor(),
        claims.exp as f64,
        "{name}: exp differs: {token}"
    );
    assert!(
        claims.exp + LEEWAY_S >= NOW,
        "{name} accepted a token that expired at {}: {token}",
        claims.exp
    );
    if let Some(nbf) = &payload_json.nbf {
        let nbf = nbf
            .as_f64()
            .unwrap_or_else(|| panic!("{name} accepted a non-numeric nbf: {token}"));
        assert!(
            nbf <= (NOW + LEEWAY_S) as f64,
            "{name} accepted a token not valid before {nbf}: {token}"
        );
    }
    if verifier.checks_issuer_and_audience {
        assert_eq!(
            payload_json.iss.as_ref().and_then(Value::as_str),
            Some(ISSUER),
            "{name} accepted a token from another issuer: {token}"
        );
        let audience_matches = match &payload_json.aud {
            Some(Value::String(audience)) => audience == AUDIENCE,
            Some(Value::Array(audiences)) => audiences
                .iter()
                .any(|audience| audience.as_str() == Some(AUDIENCE)),
            _ => false,
        };
        assert!(
            audience_matches,
            "{name} accepted a token for another audience: {token}"
        );
    }
}

/// The header fields the re-check looks at.
#[derive(Deserialize)]
struct HeaderView {
    alg: Option<Value>,
}

/// The claims the re-check looks at. Parsed the way the authenticator parses claims (into a
/// struct, unknown fields skipped): serde_json skips an unknown field without validating it, so a
/// correctly signed token whose other claims hold invalid UTF-8 or an out-of-range number is
/// accepted. Only a holder of the key can make such a token, so that is no vulnerability, and
/// parsing the whole token as a `Value` here would wrongly call it one.
#[derive(Deserialize)]
struct ClaimsView {
    sub: Option<Value>,
    name: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
}

fn decode_part<T: DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&base64url_decode(part)?).ok()
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url, as JWTs use it.
fn base64url_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut buffer = [0u8; 3];
        buffer[..group.len()].copy_from_slice(group);
        let bits = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]);
        for index in 0..=group.len() {
            let sextet = (bits >> (18 - 6 * index)) & 0x3f;
            encoded.push(char::from(BASE64URL[sextet as usize]));
        }
    }
    encoded
}

/// Decodes base64url with or without padding; `None` for any other character or a length no
/// encoding produces. Bits beyond the last whole byte are ignored.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut decoded = Vec::with_capacity(text.len() * 3 / 4);
    let mut bits = 0u32;
    let mut bit_count = 0;
    for byte in text.bytes() {
        let value = BASE64URL.iter().position(|&symbol| symbol == byte)? as u32;
        bits = bits << 6 | value;
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            decoded.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    Some(decoded)
}
