//! A `jsonwebtoken` crypto provider that prepares the HS256 key once per secret instead of once
//! per token.
//!
//! `jsonwebtoken::decode` asks the process's `CryptoProvider` for a fresh verifier on every call,
//! and the stock provider builds an HMAC key from the secret each time (hashing the padded secret
//! twice, plus allocations): about a fifth of a token's verification. The factory here keeps the
//! verifier it built last, per thread, and hands out shared handles to it while the secret is the
//! same. Everything else (other algorithms, signing, JWK helpers) is the stock `aws_lc_rs`
//! provider's.
//!
//! The factory is a plain `fn` (the crate's API), so it cannot capture the authenticator; it
//! recognises the secret by its bytes, which are the server's own (never attacker-supplied), so
//! the comparison needs no constant-time care.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use jsonwebtoken::crypto::{aws_lc, CryptoProvider, JwtVerifier};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// The HS256 verifier built last on this thread, and the secret it was built from.
struct Prepared {
    secret: Vec<u8>,
    verifier: Rc<dyn JwtVerifier>,
}

thread_local! {
    // One entry: a server has one secret. Tests with several secrets on one thread only rebuild.
    static PREPARED_HS256: RefCell<Option<Prepared>> = const { RefCell::new(None) };
}

/// A handle on a shared, already keyed verifier.
struct SharedVerifier(Rc<dyn JwtVerifier>);

impl Verifier<Vec<u8>> for SharedVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.0.verify(message, signature)
    }
}

impl JwtVerifier for SharedVerifier {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

/// The provider's verifier factory: the stock one, except that an HS256 key is prepared once.
pub(super) fn verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let build = aws_lc::DEFAULT_PROVIDER.verifier_factory;
    if *algorithm != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return build(algorithm, key);
    }
    let secret = key.try_get_as_bytes()?;
    PREPARED_HS256.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(prepared) = slot.as_ref().filter(|prepared| prepared.secret == secret) {
            return Ok(Box::new(SharedVerifier(Rc::clone(&prepared.verifier))) as _);
        }
        let verifier: Rc<dyn JwtVerifier> = Rc::from(build(algorithm, key)?);
        *slot = Some(Prepared {
            secret: secret.to_vec(),
            verifier: Rc::clone(&verifier),
        });
        Ok(Box::new(SharedVerifier(verifier)) as _)
    })
}

/// Makes this provider the process's `jsonwebtoken` provider, unless one was fixed already (by an
/// earlier `install` or any earlier use of `jsonwebtoken`, which fixes the stock provider).
/// Returns whether this provider is the one in use; verification is correct either way, only
/// slower without it.
pub(super) fn install() -> bool {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let ours = PROVIDER.get_or_init(|| CryptoProvider {
        verifier_factory: verifier,
        ..aws_lc::DEFAULT_PROVIDER.clone()
    });
    match ours.install_default() {
        Ok(()) => true,
        Err(installed) => std::ptr::eq(installed, ours),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::crypto::sign;
    use jsonwebtoken::EncodingKey;

    fn signature_bytes(message: &[u8], secret: &[u8]) -> Vec<u8> {
        let encoded = sign(message, &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
        base64_url_decode(&encoded)
    }

    /// Minimal base64url (no padding) decoding for the test's own signatures.
    fn base64_url_decode(text: &str) -> Vec<u8> {
        let value = |byte: u8| match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            other => panic!("not base64url: {other}"),
        };
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for byte in text.bytes() {
            bits = (bits << 6) | u32::from(value(byte));
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        out
    }

    #[test]
    fn prepared_verifier_accepts_its_secret_and_rejects_another() {
        let message = b"header.payload";
        let good = signature_bytes(message, b"secret-one");
        let other = signature_bytes(message, b"secret-two");
        let one = DecodingKey::from_secret(b"secret-one");
        let two = DecodingKey::from_secret(b"secret-two");
        // Twice with the same secret (the second use is the shared, prepared verifier), then
        // with another secret, which must not reuse the first key, then the first again.
        for _ in 0..2 {
            let verifier = verifier(&Algorithm::HS256, &one).unwrap();
            assert!(verifier.verify(message, &good).is_ok());
            assert!(verifier.verify(message, &other).is_err());
            assert_eq!(verifier.algorithm(), Algorithm::HS256);
        }
        let verifier_two = verifier(&Algorithm::HS256, &two).unwrap();
        assert!(verifier_two.verify(message, &other).is_ok());
        assert!(verifier_two.verify(message, &good).is_err());
        let verifier_one = verifier(&Algorithm::HS256, &one).unwrap();
        assert!(verifier_one.verify(message, &good).is_ok());
        assert!(verifier_one.verify(b"header.payloaX", &good).is_err());
    }

    #[test]
    fn other_algorithms_go_to_the_stock_provider() {
        let hs512 = verifier(&Algorithm::HS512, &DecodingKey::from_secret(b"k")).unwrap();
        assert_eq!(hs512.algorithm(), Algorithm::HS512);
        // An EC key asked for as HS256 is refused as the stock provider refuses it.
        let ec = DecodingKey::from_ec_der(&[4; 65]);
        assert!(verifier(&Algorithm::HS256, &ec).is_err());
    }
}
