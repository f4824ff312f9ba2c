//! Building SOQL text safely: every value spliced into a query goes through one of these.

use chrono::{DateTime, SecondsFormat, Utc};

/// A SOQL string literal, quotes included. Backslash and single quote are escaped (`\\`,
/// `\'`), as are the control characters SOQL has escapes for (`\n`, `\r`, `\t`, `\b`,
/// `\f`); any other control character is dropped. LIKE wildcards (`%`, `_`) are left alone:
/// a LIKE pattern is the caller's decision.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A SOQL dateTime literal (unquoted, UTC, whole seconds): `2024-05-01T12:00:00Z`.
pub fn datetime_literal(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads a REST API dateTime value. Salesforce writes `2024-05-01T12:34:56.000+0000` (no
/// colon in the offset, which RFC 3339 requires); RFC 3339 is accepted as well.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(string_literal("O'Brien"), r"'O\'Brien'");
        assert_eq!(string_literal(r"a\b"), r"'a\\b'");
        // A backslash before a quote must not un-escape it.
        assert_eq!(string_literal(r"x\' OR Id != '"), r"'x\\\' OR Id != \''");
        assert_eq!(string_literal("line\nnext\ttab"), r"'line\nnext\ttab'");
        assert_eq!(string_literal("bell\u{7}"), "'bell'");
        assert_eq!(string_literal("Custom: Support"), "'Custom: Support'");
    }

    #[test]
    fn escaped_literals_never_end_early() {
        for input in ["'", "\\", "\\'", "''", "a'b\\'c\\\\'", "'; DELETE"] {
            let literal = string_literal(input);
            let inner = &literal[1..literal.len() - 1];
            // Every quote inside is preceded by an odd number of backslashes.
            let chars: Vec<char> = inner.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if *c == '\'' {
                    let slashes = chars[..i].iter().rev().take_while(|c| **c == '\\').count();
                    assert_eq!(slashes % 2, 1, "{input:?} → {literal}");
                }
            }
            let trailing = inner.chars().rev().take_while(|c| *c == '\\').count();
            assert_eq!(trailing % 2, 0, "{input:?} → {literal}");
        }
    }

    #[test]
    fn datetimes_round_trip_both_spellings() {
        let at = parse_datetime("2024-05-01T12:34:56.000+0000").unwrap();
        assert_eq!(datetime_literal(at), "2024-05-01T12:34:56Z");
        assert_eq!(parse_datetime("2024-05-01T14:34:56+02:00"), Some(at));
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
