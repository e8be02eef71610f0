//! Writing results to stdout: raw bytes, flushed, with an error (not a panic) on a closed pipe;
//! and text from logs and tokens made safe to show on a terminal ([`for_terminal`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};

/// Writes `bytes` to stdout and flushes.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// `1 record`, `2 records`.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `s` made safe to print for a person: every character a terminal or a text viewer would act
/// on instead of showing is written as an escape, so that a path or claim from a request (or a
/// record planted in the log) can neither move the cursor, recolour or clear the screen (ANSI
/// escape sequences start with ESC or the C1 CSI), nor reorder the text around it (bidi
/// controls, the "Trojan Source" trick), nor start a fake line.
///
/// - C0 controls, DEL and, unless `keep_newlines`, the newline: `\x1b`, `\x7f`, `\x0a`;
/// - C1 controls, the bidi controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and
///   the line and paragraph separators (U+2028, U+2029): `\u{202e}`;
/// - the backslash itself, `\\`, so that an escape can only mean an escaped character.
///
/// JSON output is never passed through this: it stays exactly what was stored.
pub(crate) fn for_terminal(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let needs_escape = |c: char| match c {
        '\n' => !keep_newlines,
        '\\' => true,
        c if c.is_control() => true,
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}' => true,
        _ => false,
    };
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn controls_bidi_and_escapes_are_shown_not_acted_on() {
        let line = |s: &str| for_terminal(s, false).into_owned();
        assert_eq!(line("/orders/7 café ✓"), "/orders/7 café ✓");
        assert_eq!(line("\u{1b}[2J\u{1b}]0;x\u{7}"), "\\x1b[2J\\x1b]0;x\\x07");
        assert_eq!(line("a\tb\r\nc\0\u{7f}"), "a\\x09b\\x0d\\x0ac\\x00\\x7f");
        assert_eq!(line("\u{9b}31m\u{85}"), "\\u{9b}31m\\u{85}");
        assert_eq!(
            line("admin\u{202e}nimda\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{2028}"),
            "admin\\u{202e}nimda\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}\\u{2028}"
        );
        for c in '\u{202a}'..='\u{202e}' {
            assert_eq!(line(&c.to_string()), format!("\\u{{{:x}}}", u32::from(c)));
        }
        // A literal backslash sequence cannot pass for an escaped character.
        assert_eq!(line(r"\x1b \u{202e}"), r"\\x1b \\u{202e}");
        assert_eq!(for_terminal("a\nb\u{1b}", true), "a\nb\\x1b");
    }
}
