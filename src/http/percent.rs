//! Percent-decoding (RFC 3986 2.1) of request paths and query values.

use std::borrow::Cow;

/// How `+` is read: literally in a path, as a space in a query (HTML form encoding, which is what a
/// browser's `URLSearchParams` produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlusMeans {
    Plus,
    Space,
}

/// Decodes `%XX` escapes. Borrows when there is nothing to decode. `None` when an escape is
/// malformed or the decoded bytes are not UTF-8: such input is refused rather than guessed at.
pub fn percent_decode(input: &str, plus: PlusMeans) -> Option<Cow<'_, str>> {
    let needs_decoding = input.contains('%') || (plus == PlusMeans::Space && input.contains('+'));
    if !needs_decoding {
        return Some(Cow::Borrowed(input));
    }
    let bytes = input.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = hex_value(*bytes.get(index + 1)?)?;
                let low = hex_value(*bytes.get(index + 2)?)?;
                decoded.push(high << 4 | low);
                index += 3;
            }
            b'+' if plus == PlusMeans::Space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The decoded value of the first `name=value` pair in a query string.
/// `None` when absent; `Some(None)` when present but not decodable.
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<Option<Cow<'a, str>>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value, PlusMeans::Space))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            percent_decode("/js/app.js", PlusMeans::Plus),
            Some(Cow::Borrowed("/js/app.js"))
        ));
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            percent_decode("/a%20b%2Fc%e2%9c%93", PlusMeans::Plus).as_deref(),
            Some("/a b/c\u{2713}")
        );
        assert_eq!(
            percent_decode("a+b", PlusMeans::Plus).as_deref(),
            Some("a+b")
        );
        assert_eq!(
            percent_decode("a+b", PlusMeans::Space).as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn malformed_escapes_and_invalid_utf8_are_refused() {
        assert_eq!(percent_decode("%", PlusMeans::Plus), None);
        assert_eq!(percent_decode("%4", PlusMeans::Plus), None);
        assert_eq!(percent_decode("%zz", PlusMeans::Plus), None);
        assert_eq!(percent_decode("%ff%fe", PlusMeans::Plus), None);
    }

    #[test]
    fn query_values_are_found_by_exact_name() {
        assert_eq!(
            query_value("a=1&token=x%2Ey&b", "token")
                .flatten()
                .as_deref(),
            Some("x.y")
        );
        assert_eq!(query_value("tokens=1&b", "token"), None);
        assert_eq!(query_value("token=%zz", "token"), Some(None));
        assert_eq!(
            query_value("b&token", "token"),
            Some(Some(Cow::Borrowed("")))
        );
    }
}
