//! HTML for the console: one escaping function that every value not
//! written by this crate goes through, and the page layout.

use std::fmt::Write as _;

use capf_operations::Role;

use crate::Operator;

/// `text` made safe to place in HTML element content and in quoted
/// attribute values: `&`, `<`, `>`, `"` and `'` become character
/// references. Every value that comes from a request, the store or a
/// certificate goes through here.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one component of a URL (path segment or query value):
/// everything but unreserved characters percent-encoded. The result is
/// also safe in an HTML attribute.
pub(crate) fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The hidden field that carries the session's CSRF token in a form.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf_token" value="{}">"#,
        esc(csrf)
    )
}

/// `<option>`s of a `<select>`: (value, label), the one equal to
/// `selected` selected.
pub(crate) fn options(choices: &[(&str, &str)], selected: &str) -> String {
    let mut out = String::new();
    for (value, label) in choices {
        let mark = if *value == selected { " selected" } else { "" };
        let _ = write!(
            out,
            r#"<option value="{}"{mark}>{}</option>"#,
            esc(value),
            esc(label)
        );
    }
    out
}

/// A whole page: the navigation for `who` (none on the login page),
/// the title and the body (already HTML).
pub(crate) fn page(title: &str, who: Option<(&Operator, &str)>, body: &str) -> String {
    let nav = match who {
        None => String::new(),
        Some((operator, csrf)) => {
            let users = if operator.role.allows(Role::Admin) {
                r#"<a href="/users">Users</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav aria-label="Main"><a href="/devices">Find and List Phones</a><a href="/api/v1/report">CAPF report (CSV)</a><a href="/ca">CAPF certificate</a><a href="/parameters">Service parameters</a>{users}</nav><span class="who">{name} ({role})</span><form method="post" action="/logout">{csrf}<button class="link" type="submit">Log out</button></form>"#,
                name = esc(&operator.name),
                role = esc(operator.role.as_str()),
                csrf = csrf_field(csrf),
            )
        }
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - CAPF console</title>
<link rel="stylesheet" href="/assets/console.css">
</head>
<body>
<header><span class="brand">CAPF console</span>{nav}</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    )
}

/// A notice box: `kind` is `ok`, `error` or empty.
pub(crate) fn notice(kind: &str, text_html: &str) -> String {
    format!(r#"<div class="notice {kind}" role="status">{text_html}</div>"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("SEP001122334455"), "SEP001122334455");
        assert_eq!(esc(""), "");
        assert_eq!(esc("é ü"), "é ü");
        // Escaping twice escapes the ampersands again: nothing is left raw.
        assert_eq!(esc("&lt;"), "&amp;lt;");
        for c in ['<', '>', '"', '\''] {
            assert!(!esc(&format!("a{c}b")).contains(c));
        }
    }

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(url_part("SEP0011-a_b.c~"), "SEP0011-a_b.c~");
        assert_eq!(url_part("a b/c?d&e\"<"), "a%20b%2Fc%3Fd%26e%22%3C");
        assert_eq!(url_part("é"), "%C3%A9");
    }

    #[test]
    fn options_mark_the_selection_and_escape() {
        let html = options(&[("a", "A"), ("<b>", "B & C")], "<b>");
        assert_eq!(
            html,
            r#"<option value="a">A</option><option value="&lt;b&gt;" selected>B &amp; C</option>"#
        );
    }

    #[test]
    fn pages_escape_the_title() {
        let html = page("<x>", None, "<p>body</p>");
        assert!(html.contains("<h1>&lt;x&gt;</h1>"));
        assert!(html.contains("<p>body</p>"));
        assert!(!html.contains("<x>"));
    }
}
