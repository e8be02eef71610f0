//! HTML for the view: text from records made safe to show, and the page frame.
//!
//! Everything a record holds came from a request or a token, so it is hostile until shown:
//! the characters a terminal would act on are written as escapes exactly as `veritrail events`
//! writes them ([`for_terminal`]: controls, bidi overrides, line separators), then the markup
//! characters become entities. Pages carry no inline script or style (the Content-Security-
//! Policy forbids both); the one script is an embedded asset.

use std::fmt::Write as _;

use crate::output::for_terminal;

/// Text for an element or an attribute value, on one line.
pub(crate) fn text(s: &str) -> String {
    markup(&for_terminal(s, false))
}

/// Text for a `<pre>` block: newlines kept, everything else as [`text`].
pub(crate) fn block(s: &str) -> String {
    markup(&for_terminal(s, true))
}

/// `& < > " '` as entities (the rest is already free of controls).
fn markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
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

/// A query-string value: everything but unreserved characters percent-encoded.
pub(crate) fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Which page of the navigation is open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Events,
    Checkpoints,
    None,
}

/// A whole page: `title` (plain text), the navigation with `nav` marked current, and `main`
/// (markup already made safe).
pub(crate) fn page(title: &str, origin: &str, nav: Nav, main: &str) -> String {
    let link = |to: Nav, href: &str, label: &str| {
        let current = if to == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · veritrail</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/view.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><nav aria-label=\"Sections\"><span class=\"brand\">veritrail</span>\
         <span class=\"origin\" title=\"the log's origin\">{origin}</span><ul>{}{}{}</ul>\
         </nav></header><main id=\"main\" tabindex=\"-1\">{main}</main></body></html>\n",
        link(Nav::Overview, "/", "Overview"),
        link(Nav::Events, "/events", "Events"),
        link(Nav::Checkpoints, "/checkpoints", "Checkpoints"),
        title = text(title),
        origin = text(origin),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_controls_and_bidi_are_shown_not_obeyed() {
        assert_eq!(
            text("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(text("admin\u{202e}nimda"), "admin\\u{202e}nimda");
        assert_eq!(text("a\nb\u{1b}[2J"), "a\\x0ab\\x1b[2J");
        assert_eq!(block("a\nb\u{2066}"), "a\nb\\u{2066}");
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
