//! Text taken from a phone's certificate, made safe to show.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with control characters, line breaks and invisible formatting
/// characters (bidirectional overrides, zero-width marks) written as
/// escapes (`\n`, `\u{202e}`), and backslashes doubled, so that a subject
/// name from a phone's certificate cannot forge lines in a log, a trace
/// file or a terminal. Use it for human output; JSON keeps the exact text.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::escape_text;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape_text("CN=SEP001122334455, O=Cisco"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn control_characters_and_lines_are_escaped() {
        let forged = "CN=x\n-----BEGIN CERTIFICATE-----\r\nMII\u{1b}[31m\u{202e}\\";
        let shown = escape_text(forged);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(
            shown,
            "CN=x\\n-----BEGIN CERTIFICATE-----\\r\\nMII\\u{1b}[31m\\u{202e}\\\\"
        );
    }
}
