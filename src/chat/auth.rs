//! JWT verification and (HS256) minting.
//!
//! The algorithm is fixed by configuration and never taken from the token header, so a token signed
//! with a public key used as an HMAC secret (the classic key-confusion attack) is rejected. Times
//! are checked here against a caller-supplied `now` instead of letting `jsonwebtoken` read the
//! system clock, which keeps verification deterministic under a simulated clock.

use std::collections::HashSet;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

mod prepared_hmac;
mod verified_tokens;

use verified_tokens::VerifiedTokens;

/// Allowed clock skew between the token issuer and this server, for `exp` and `nbf`.
pub const LEEWAY_S: u64 = 30;
/// Longest accepted `sub`: it becomes part of the private room name and of every event.
pub const MAX_SUB_BYTES: usize = 128;
/// Longest accepted display `name` (64 characters of up to 4 UTF-8 bytes each).
pub const MAX_NAME_BYTES: usize = 256;

pub enum KeyConfig {
    /// Shared secret for HS256.
    Hs256(Vec<u8>),
    /// A PEM public key; `algorithm` is RS256 or ES256.
    PublicKeyPem { algorithm: Algorithm, pem: Vec<u8> },
}

pub struct AuthConfig {
    pub key: KeyConfig,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
}

/// What a verified token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Optional display name.
    pub name: Option<String>,
    /// Expiry, unix seconds (before leeway).
    pub exp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not a JWT, undecodable parts, or claims of the wrong shape.
    Malformed(String),
    /// Signature does not verify, or the header names another algorithm than configured.
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// `sub` missing, empty or too long, or `name` too long.
    BadClaims(&'static str),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed(detail) => write!(f, "malformed token: {detail}"),
            AuthError::BadSignature => f.write_str("invalid token signature or algorithm"),
            AuthError::Expired => f.write_str("token expired"),
            AuthError::NotYetValid => f.write_str("token not yet valid"),
            AuthError::WrongIssuer => f.write_str("token issuer not accepted"),
            AuthError::WrongAudience => f.write_str("token audience not accepted"),
            AuthError::BadClaims(what) => write!(f, "invalid token claims: {what}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The claims as they appear in a token. `exp`/`nbf` are NumericDates, which RFC 7519 allows to
/// be fractional, so they are read as numbers and truncated.
#[derive(Deserialize)]
struct TokenClaims {
    sub: Option<String>,
    name: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

pub struct Authenticator {
    algorithm: Algorithm,
    decoding: DecodingKey,
    /// Present for HS256 only: public-key configs cannot mint.
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    /// Tokens that passed [`Authenticator::verify`], so the same token presented again skips the
    /// signature and JSON work; see `verified_tokens` for why that is safe.
    verified: VerifiedTokens,
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Result<Authenticator, String> {
        let (algorithm, decoding, encoding) = match &config.key {
            KeyConfig::Hs256(secret) => {
                if secret.is_empty() {
                    return Err("the JWT secret is empty".to_owned());
                }
                // Build the HMAC key once per secret rather than once per token.
                prepared_hmac::install();
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret),
                    Some(EncodingKey::from_secret(secret)),
                )
            }
            KeyConfig::PublicKeyPem { algorithm, pem } => {
                let decoding = match algorithm {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
                    Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
                    other => return Err(format!("unsupported public-key algorithm {other:?}")),
                }
                .map_err(|e| format!("cannot read the {algorithm:?} public key PEM: {e}"))?;
                (*algorithm, decoding, None)
            }
        };
        let mut validation = Validation::new(algorithm);
        // Times are checked in `verify` against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims = HashSet::new();
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            // Without a configured audience, an `aud` in the token is not ours to judge.
            None => validation.validate_aud = false,
        }
        Ok(Authenticator {
            algorithm,
            decoding,
            encoding,
            validation,
            issuer: config.issuer,
            audience: config.audience,
            verified: VerifiedTokens::new(),
        })
    }

    /// The configured (pinned) algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verifies signature, algorithm, `exp` (required), `nbf`, `iss`/`aud` when configured,
    /// all times with [`LEEWAY_S`] against `now_unix_s`.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Claims, AuthError> {
        let key = self.verified.key(token.as_bytes());
        if let Some(remembered) = key.as_ref().and_then(|key| self.verified.lookup(key)) {
            check_times(remembered.claims.exp, remembered.not_before, now_unix_s)?;
            return Ok(remembered.claims);
        }
        let (claims, not_before) = self.verify_fully(token, now_unix_s)?;
        if let Some(key) = &key {
            self.verified.remember(key, &claims, not_before);
        }
        Ok(claims)
    }

    /// [`Authenticator::verify`] without the memory of verified tokens; also returns `nbf`.
    fn verify_fully(
        &self,
        token: &str,
        now_unix_s: u64,
    ) -> Result<(Claims, Option<u64>), AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    AuthError::BadSignature
                }
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                    AuthError::WrongAudience
                }
                _ => AuthError::Malformed(e.to_string()),
            })?;
        let claims = data.claims;
        let exp = claims
            .exp
            .and_then(numeric_date)
            .ok_or(AuthError::BadClaims("exp missing or not a number"))?;
        // Expiry is judged before the shape of `nbf`, as it always was.
        check_times(exp, None, now_unix_s)?;
        let not_before = claims
            .nbf
            .map(|nbf| numeric_date(nbf).ok_or(AuthError::BadClaims("nbf is not a number")))
            .transpose()?;
        check_times(exp, not_before, now_unix_s)?;
        let sub = match claims.sub {
            Some(sub) if !sub.is_empty() && sub.len() <= MAX_SUB_BYTES => sub,
            Some(sub) if !sub.is_empty() => return Err(AuthError::BadClaims("sub too long")),
            _ => return Err(AuthError::BadClaims("sub missing or empty")),
        };
        if claims
            .name
            .as_ref()
            .is_some_and(|n| n.len() > MAX_NAME_BYTES)
        {
            return Err(AuthError::BadClaims("name too long"));
        }
        let claims = Claims {
            sub,
            name: claims.name.filter(|n| !n.is_empty()),
            exp,
        };
        Ok((claims, not_before))
    }

    /// Mints an HS256 token valid for `ttl_s` seconds from `now_unix_s`, carrying the configured
    /// issuer and audience so that [`Authenticator::verify`] accepts it.
    pub fn mint(
        &self,
        sub: &str,
        name: Option<&str>,
        ttl_s: u64,
        now_unix_s: u64,
    ) -> Result<String, String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or("tokens can only be minted with an HS256 secret, not a public key")?;
        if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
            return Err(format!("sub must be 1 to {MAX_SUB_BYTES} bytes"));
        }
        if name.is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(format!("name must be at most {MAX_NAME_BYTES} bytes"));
        }
        let claims = MintedClaims {
            sub,
            name,
            iat: now_unix_s,
            exp: now_unix_s.saturating_add(ttl_s),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| format!("cannot sign the token: {e}"))
    }
}

/// The only checks whose outcome changes with time: `exp` and `nbf`, each with [`LEEWAY_S`].
fn check_times(exp: u64, not_before: Option<u64>, now_unix_s: u64) -> Result<(), AuthError> {
    if exp.saturating_add(LEEWAY_S) < now_unix_s {
        return Err(AuthError::Expired);
    }
    if not_before.is_some_and(|nbf| nbf > now_unix_s.saturating_add(LEEWAY_S)) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// A NumericDate as whole unix seconds; `None` for negative, NaN or absurdly large values.
fn numeric_date(value: f64) -> Option<u64> {
    (value.is_finite() && (0.0..1.0e15).contains(&value)).then_some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5wxLTAVHyOkfMJq/
OdoitZiEgn5jSDm6LKEw1YTnBVWhRANCAAS9bPh+8OkoDjC04qe51rxPmRP6HyRx
DeDSgLA/LOE3lmXFPtvrPQvxnt5yVsMaxEEMU1Bs2vAftpmab2gYZiZW
-----END PRIVATE KEY-----
";
    const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvWz4fvDpKA4wtOKnuda8T5kT+h8k
cQ3g0oCwPyzhN5ZlxT7b6z0L8Z7eclbDGsRBDFNQbNrwH7aZmm9oGGYmVg==
-----END PUBLIC KEY-----
";
    const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAmkPZO5viSwcU7TdKL2tx
49W7/gRrllY00DuzGT+7/1HxWGeNBIWmcpWMCTifXskYxJ6AhRBz0tLSaXJWvR+9
1SENMC0HKYRhtp5ajKqgPoz491gZVub8IKBOjyrm8V8M/VexFObL6PgjGvipfGWA
eUkxJbnPPHHuNogrwfsm0ye16Z0+a25Y481M86NDnX5LauyG9F0jnC2DwTRvU9p9
Vm5VGKtyjZPxJYpAn5BxOXie19ZvHiSNOIqpSUCjZFMN4FcJHVNk9zDebeccfK4E
Dt0my1RnrTFHoVoQpsZyi5Hx0IvGPZSviiAjw0AjzhFn0bJ779dIUL7xOynEydPR
ewIDAQAB
-----END PUBLIC KEY-----
";

    fn hs256(secret: &str) -> Authenticator {
        Authenticator::new(AuthConfig {
            key: KeyConfig::Hs256(secret.as_bytes().to_vec()),
            issuer: None,
            audience: None,
        })
        .unwrap()
    }

    fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn minted_token_verifies_with_sub_name_and_exp() {
        let auth = hs256("s3cret");
        let token = auth.mint("alice", Some("Alice"), 3600, NOW).unwrap();
        let claims = auth.verify(&token, NOW + 10).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "alice".into(),
                name: Some("Alice".into()),
                exp: NOW + 3600
            }
        );
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let auth = hs256("s3cret");
        let token = auth.mint("alice", None, 60, NOW).unwrap();
        assert!(auth.verify(&token, NOW + 60 + LEEWAY_S).is_ok());
        assert_eq!(
            auth.verify(&token, NOW + 61 + LEEWAY_S),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn nbf_in_the_future_is_rejected_beyond_the_leeway() {
        let claims = serde_json::json!({"sub": "bob", "exp": NOW + 600, "nbf": NOW + 100});
        let token = sign_hs256(b"k", &claims);
        let auth = hs256("k");
        assert_eq!(auth.verify(&token, NOW), Err(AuthError::NotYetValid));
        assert!(auth.verify(&token, NOW + 100 - LEEWAY_S).is_ok());
    }

    #[test]
    fn exp_is_required_and_fractional_dates_are_accepted() {
        let auth = hs256("k");
        let no_exp = sign_hs256(b"k", &serde_json::json!({"sub": "bob"}));
        assert!(matches!(
            auth.verify(&no_exp, NOW),
            Err(AuthError::BadClaims(_))
        ));
        let fractional = sign_hs256(
            b"k",
            &serde_json::json!({"sub": "bob", "exp": (NOW + 5) as f64 + 0.5}),
        );
        assert_eq!(auth.verify(&fractional, NOW).unwrap().exp, NOW + 5);
    }

    #[test]
    fn sub_must_be_present_and_short() {
        let auth = hs256("k");
        for claims in [
            serde_json::json!({"exp": NOW + 60}),
            serde_json::json!({"sub": "", "exp": NOW + 60}),
            serde_json::json!({"sub": "x".repeat(MAX_SUB_BYTES + 1), "exp": NOW + 60}),
        ] {
            let token = sign_hs256(b"k", &claims);
            assert!(matches!(
                auth.verify(&token, NOW),
                Err(AuthError::BadClaims(_))
            ));
        }
    }

    #[test]
    fn mint_refuses_what_verify_would_reject() {
        let auth = hs256("k");
        assert!(auth.mint("", None, 60, NOW).is_err());
        assert!(auth
            .mint(&"s".repeat(MAX_SUB_BYTES + 1), None, 60, NOW)
            .is_err());
        let long_name = "\u{1F600}".repeat(MAX_NAME_BYTES / 4 + 1);
        assert!(auth.mint("alice", Some(&long_name), 60, NOW).is_err());
        let longest_name = "\u{1F600}".repeat(64);
        let token = auth.mint("alice", Some(&longest_name), 60, NOW).unwrap();
        assert_eq!(auth.verify(&token, NOW).unwrap().name, Some(longest_name));
    }

    #[test]
    fn wrong_secret_and_garbage_are_rejected() {
        let token = hs256("one").mint("alice", None, 60, NOW).unwrap();
        assert_eq!(
            hs256("two").verify(&token, NOW),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            hs256("two").verify("not.a.jwt", NOW),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            hs256("two").verify("", NOW),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn unsigned_tokens_are_rejected() {
        // {"alg":"none","typ":"JWT"} . {"sub":"mallory","exp":4102444800} . (empty signature)
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                     eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        assert!(hs256("k").verify(token, NOW).is_err());
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let auth = Authenticator::new(AuthConfig {
            key: KeyConfig::Hs256(b"k".to_vec()),
            issuer: Some("https://idp.example".into()),
            audience: Some("emotibot".into()),
        })
        .unwrap();
        let minted = auth.mint("alice", None, 60, NOW).unwrap();
        assert!(auth.verify(&minted, NOW).is_ok());
        let wrong_iss = sign_hs256(
            b"k",
            &serde_json::json!({"sub":"a","exp":NOW+60,"iss":"evil","aud":"emotibot"}),
        );
        assert_eq!(auth.verify(&wrong_iss, NOW), Err(AuthError::WrongIssuer));
        let no_aud = sign_hs256(
            b"k",
            &serde_json::json!({"sub":"a","exp":NOW+60,"iss":"https://idp.example"}),
        );
        assert_eq!(auth.verify(&no_aud, NOW), Err(AuthError::WrongAudience));
    }

    #[test]
    fn es256_public_key_verifies_and_cannot_mint() {
        let auth = Authenticator::new(AuthConfig {
            key: KeyConfig::PublicKeyPem {
                algorithm: Algorithm::ES256,
                pem: EC_PUBLIC_PEM.as_bytes().to_vec(),
            },
            issuer: None,
            audience: None,
        })
        .unwrap();
        let key = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &serde_json::json!({"sub": "carol", "exp": NOW + 60}),
            &key,
        )
        .unwrap();
        assert_eq!(auth.verify(&token, NOW).unwrap().sub, "carol");
        assert!(auth.mint("carol", None, 60, NOW).is_err());
    }

    #[test]
    fn a_remembered_token_is_still_judged_against_the_clock() {
        let auth = hs256("k");
        let token = auth.mint("alice", None, 60, NOW).unwrap();
        assert!(auth.verify(&token, NOW).is_ok());
        // The second verification is answered from memory, with the same claims.
        assert_eq!(
            auth.verify(&token, NOW),
            auth.verify_fully(&token, NOW).map(|v| v.0)
        );
        assert_eq!(
            auth.verify(&token, NOW + 61 + LEEWAY_S),
            Err(AuthError::Expired)
        );
        let claims = serde_json::json!({"sub": "bob", "exp": NOW + 600, "nbf": NOW});
        let with_nbf = sign_hs256(b"k", &claims);
        assert!(auth.verify(&with_nbf, NOW).is_ok());
        // A clock stepped back before `nbf` (beyond the leeway) makes it not yet valid again.
        assert_eq!(
            auth.verify(&with_nbf, NOW - LEEWAY_S - 1),
            Err(AuthError::NotYetValid)
        );
        assert!(auth.verify(&with_nbf, NOW - LEEWAY_S).is_ok());
    }

    #[test]
    fn only_the_exact_verified_bytes_are_remembered() {
        let auth = hs256("k");
        let token = auth.mint("alice", None, 60, NOW).unwrap();
        assert!(auth.verify(&token, NOW).is_ok());
        // The same claims under a damaged signature, and the token with a trailing byte, are
        // verified in full and refused.
        let mut damaged = token.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert_eq!(auth.verify(&damaged, NOW), Err(AuthError::BadSignature));
        assert!(auth.verify(&format!("{token}A"), NOW).is_err());
        // Another authenticator (another secret) remembers nothing of the first one's tokens.
        assert_eq!(
            hs256("other").verify(&token, NOW),
            Err(AuthError::BadSignature)
        );
        // Refused tokens are not remembered: a token refused once is refused again.
        let expired = auth.mint("carol", None, 1, NOW - 100).unwrap();
        assert_eq!(auth.verify(&expired, NOW), Err(AuthError::Expired));
        assert_eq!(
            auth.verify(&expired, NOW - 100),
            Ok(auth.verify_fully(&expired, NOW - 100).unwrap().0)
        );
    }

    #[test]
    fn public_key_used_as_hmac_secret_is_rejected() {
        let auth = Authenticator::new(AuthConfig {
            key: KeyConfig::PublicKeyPem {
                algorithm: Algorithm::RS256,
                pem: RSA_PUBLIC_PEM.as_bytes().to_vec(),
            },
            issuer: None,
            audience: None,
        })
        .unwrap();
        let forged = sign_hs256(
            RSA_PUBLIC_PEM.as_bytes(),
            &serde_json::json!({"sub": "mallory", "exp": NOW + 60}),
        );
        assert_eq!(auth.verify(&forged, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn bad_key_configs_are_errors() {
        let bad_pem = Authenticator::new(AuthConfig {
            key: KeyConfig::PublicKeyPem {
                algorithm: Algorithm::RS256,
                pem: b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".to_vec(),
            },
            issuer: None,
            audience: None,
        });
        assert!(bad_pem.is_err());
        let empty_secret = Authenticator::new(AuthConfig {
            key: KeyConfig::Hs256(Vec::new()),
            issuer: None,
            audience: None,
        });
        assert!(empty_secret.is_err());
        let wrong_alg = Authenticator::new(AuthConfig {
            key: KeyConfig::PublicKeyPem {
                algorithm: Algorithm::HS512,
                pem: EC_PUBLIC_PEM.as_bytes().to_vec(),
            },
            issuer: None,
            audience: None,
        });
        assert!(wrong_alg.is_err());
    }
}
