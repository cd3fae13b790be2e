//! The regex-only baseline: what a data-loss-prevention rule set without validation
//! flags. Written by hand (no regex crate), with the semantics of three unanchored
//! patterns that such rule sets commonly use:
//!
//! * `\d[\d -]{11,17}\d`: 13 to 19 characters of digits, spaces and dashes, the usual
//!   card-number pattern. It checks no Luhn digit and no boundaries, so it also matches
//!   order numbers, epoch milliseconds, tracking numbers and phone numbers.
//! * `\d{3}-\d{2}-\d{4}`: the SSN shape, with no allocation rules.
//! * `@`: anything that might be an e-mail address.

use conclave_runtime::telemetry::EventSample;
use serde_json::Value;

/// Whether the regex-only baseline flags `event` as holding personal data. Like the
/// compliance agent it reads every string, every number and every object key in
/// `fields`; unlike it, it validates nothing.
pub fn regex_only_flags(event: &EventSample) -> bool {
    event
        .fields
        .iter()
        .any(|(key, value)| text_flags(key) || value_flags(value))
}

fn value_flags(v: &Value) -> bool {
    match v {
        Value::String(s) => text_flags(s),
        Value::Number(n) => text_flags(&n.to_string()),
        Value::Array(items) => items.iter().any(value_flags),
        Value::Object(map) => map.iter().any(|(k, v)| text_flags(k) || value_flags(v)),
        Value::Null | Value::Bool(_) => false,
    }
}

fn text_flags(s: &str) -> bool {
    let b = s.as_bytes();
    b.contains(&b'@') || has_card_like(b) || has_ssn_shape(b)
}

/// `\d[\d -]{11,17}\d` matches somewhere in `b`.
fn has_card_like(b: &[u8]) -> bool {
    let is_run_char = |c: u8| c.is_ascii_digit() || c == b' ' || c == b'-';
    (0..b.len()).filter(|&i| b[i].is_ascii_digit()).any(|i| {
        // The run of allowed characters after `i`, up to the longest match.
        let run_end = (i + 1..b.len().min(i + 19))
            .find(|&j| !is_run_char(b[j]))
            .unwrap_or(b.len().min(i + 19));
        (i + 12..run_end).any(|j| b[j].is_ascii_digit())
    })
}

/// `\d{3}-\d{2}-\d{4}` matches somewhere in `b`.
fn has_ssn_shape(b: &[u8]) -> bool {
    const SHAPE: &[u8] = b"ddd-dd-dddd";
    b.windows(SHAPE.len()).any(|w| {
        SHAPE.iter().zip(w).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_the_regexes_would() {
        let cases = [
            ("13 digits", "1234567890123", true),
            ("12 digits", "123456789012", false),
            ("inside a longer run", "x 12345678901234567890123 y", true),
            ("spaced card", "4111 1111 1111 1111", true),
            ("phone", "+1 415-555-0132", true),
            ("short phone", "415-555-0132", false),
            ("trailing separators do not count", "123456789012 - ", false),
            ("ssn shape", "id 000-00-0000", true),
            ("at sign", "@oncall", true),
            ("plain words", "leave at the door", false),
            ("sku and last4", "sku-4821 4242", false),
        ];
        for (name, text, want) in cases {
            assert_eq!(text_flags(text), want, "case `{name}`");
        }
    }
}
