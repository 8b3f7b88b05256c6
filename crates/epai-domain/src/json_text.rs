//! What PostgreSQL's `jsonb` makes of JSON text that serde_json has already accepted.
//!
//! Events keep their `data` as the text they arrived in (parsing it into a tree and writing it
//! out again cost more than the rest of a batch request). serde_json checks the syntax while
//! capturing that text, but not what `jsonb` refuses or inflates: `\u0000` and unpaired
//! surrogate escapes, nesting beyond what its parser's stack allows, and numbers, which it
//! stores written out in full (`1e100000` becomes a hundred thousand digits).

/// How deep objects and arrays may nest inside one field.
pub const MAX_NESTING: usize = 100;

/// Why JSON text cannot be stored as `jsonb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unstorable {
    /// A `\u0000` escape: `jsonb` has no way to hold the NUL character.
    Nul,
    /// A `\uD800`–`\uDFFF` escape without its other half.
    UnpairedSurrogate,
    /// Objects and arrays nested deeper than [`MAX_NESTING`].
    TooDeep,
}

/// The size of well-formed JSON `text` once stored: its length, with each number's exponent
/// counted as the digits it stands for. Fails on what `jsonb` cannot store.
///
/// `text` must already be valid JSON (serde_json's `RawValue` guarantees it): this only looks
/// at escapes, brackets and exponents.
pub fn stored_size(text: &str) -> Result<usize, Unstorable> {
    let bytes = text.as_bytes();
    let mut size = bytes.len();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = end_of_string(bytes, i + 1)?;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Unstorable::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let (end, exponent) = number(bytes, i);
                size = size.saturating_add(exponent);
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(size)
}

/// The index just past the string whose contents begin at `start`.
fn end_of_string(bytes: &[u8], start: usize) -> Result<usize, Unstorable> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok(i + 1),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let unit = hex_escape(bytes, i).ok_or(Unstorable::UnpairedSurrogate)?;
                i += 6;
                match unit {
                    0 => return Err(Unstorable::Nul),
                    0xD800..=0xDBFF => match hex_escape(bytes, i) {
                        Some(0xDC00..=0xDFFF) => i += 6,
                        _ => return Err(Unstorable::UnpairedSurrogate),
                    },
                    0xDC00..=0xDFFF => return Err(Unstorable::UnpairedSurrogate),
                    _ => {}
                }
            }
            // Any other escape is two bytes; skipping both keeps `\"` and `\\` in the string.
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(i)
}

/// The code unit of the `\uXXXX` escape at `at`, if there is one.
fn hex_escape(bytes: &[u8], at: usize) -> Option<u32> {
    let escape = bytes.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

/// The index just past the number starting at `start`, and the magnitude of its exponent.
fn number(bytes: &[u8], start: usize) -> (usize, usize) {
    let mut i = start;
    let mut exponent: Option<usize> = None;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'e' | b'E' => exponent = Some(0),
            b'0'..=b'9' => {
                if let Some(e) = exponent.as_mut() {
                    *e = e.saturating_mul(10).saturating_add(usize::from(b - b'0'));
                }
            }
            b'-' | b'+' | b'.' => {}
            _ => break,
        }
        i += 1;
    }
    (i, exponent.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_is_its_own_size() {
        let text = r#"{"url": "/pricing", "n": [1, -2.5, 3e0], "ok": true, "q": "say \"hi\" \\"}"#;
        assert_eq!(stored_size(text), Ok(text.len()));
        let escapes = r#""\ud83d\ude00 \u00e9""#;
        assert_eq!(stored_size(escapes), Ok(escapes.len()));
    }

    #[test]
    fn exponents_count_as_the_digits_they_stand_for() {
        assert_eq!(stored_size("1e5"), Ok(3 + 5));
        assert_eq!(stored_size("[1E-300, 2.5e+10]"), Ok(17 + 300 + 10));
        assert_eq!(stored_size("1e99999999999999999999999999"), Ok(usize::MAX));
        assert_eq!(stored_size(r#""1e9""#), Ok(5), "not inside strings");
    }

    #[test]
    fn nul_escapes_are_unstorable_but_escaped_backslashes_are_not() {
        assert_eq!(stored_size(r#"{"s": "a\u0000b"}"#), Err(Unstorable::Nul));
        assert_eq!(stored_size(r#"{"a\u0000": 1}"#), Err(Unstorable::Nul));
        let escaped_backslash = r#"{"s": "a\\u0000b"}"#;
        assert_eq!(stored_size(escaped_backslash), Ok(escaped_backslash.len()));
        assert_eq!(stored_size(r#"{"s": "a\\\u0000b"}"#), Err(Unstorable::Nul));
    }

    #[test]
    fn surrogate_escapes_must_come_in_pairs() {
        for lone in [
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            r#""\uDBFF\uD800""#,
        ] {
            assert_eq!(
                stored_size(lone),
                Err(Unstorable::UnpairedSurrogate),
                "{lone}"
            );
        }
        assert!(stored_size(r#""\uD83D\uDE00""#).is_ok());
    }

    #[test]
    fn nesting_is_bounded_outside_strings_only() {
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(stored_size(&nested(MAX_NESTING)).is_ok());
        assert_eq!(
            stored_size(&nested(MAX_NESTING + 1)),
            Err(Unstorable::TooDeep)
        );
        let in_string = format!("\"{}\"", "[".repeat(MAX_NESTING * 2));
        assert!(stored_size(&in_string).is_ok());
        let siblings = format!("[{}]", vec![nested(MAX_NESTING - 1); 3].join(","));
        assert!(stored_size(&siblings).is_ok(), "depth, not count");
    }
}
