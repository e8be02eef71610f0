//! The record bytes of an `http` event, written by hand: exactly the bytes serde_json writes
//! for the same event (the tests compare both on generated events, strings full of quotes,
//! control characters and non-ASCII text included), in a third of the time. It skips serde's
//! per-field machinery and escapes strings eight bytes at a time. System records, rare and
//! small, keep going through serde.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::http::{Actor, Authn, Authz, HttpEvent, Request};
use super::{Text, TokenEvidence, VERSION, time_format};

/// Appends `{"v":1,"id":…,"index":…,"time":…,"kind":"http",…}` for `http` at `index`.
pub(super) fn write_http(
    out: &mut Vec<u8>,
    id: &Uuid,
    index: u64,
    time: &time::OffsetDateTime,
    http: &HttpEvent,
) {
    let mut o = Obj::open(out);
    o.key("v");
    o.int(u64::from(VERSION));
    o.key("id");
    o.uuid(id);
    o.key("index");
    o.int(index);
    o.key("time");
    let mut buf = [0u8; 27];
    o.raw_str(time_format::format(time, &mut buf));
    o.key("kind");
    o.raw_str("http");
    o.key("phase");
    o.raw_str(http.phase.as_str());
    if let Some(intent) = &http.intent_id {
        o.key("intent_id");
        o.uuid(intent);
    }
    if let Some(actor) = &http.actor {
        o.key("actor");
        write_actor(o.out, actor);
    }
    if let Some(token) = &http.token {
        o.key("token");
        write_token(o.out, token);
    }
    o.key("request");
    write_request(o.out, &http.request);
    if let Some(authn) = &http.authn {
        o.key("authn");
        write_authn(o.out, authn);
    }
    if let Some(authz) = &http.authz {
        o.key("authz");
        write_authz(o.out, authz);
    }
    o.opt_str("action", http.action.as_deref());
    o.opt_text("target", http.target.as_ref());
    o.map("extra", &http.extra, serde_value);
    if let Some(status) = http.status {
        o.key("status");
        o.int(u64::from(status));
    }
    if let Some(latency) = http.latency_us {
        o.key("latency_us");
        o.int(latency);
    }
    if let Some(outcome) = http.outcome {
        o.key("outcome");
        o.raw_str(outcome.as_str());
    }
    o.close();
}

fn write_actor(out: &mut Vec<u8>, a: &Actor) {
    let mut o = Obj::open(out);
    o.opt_text("sub", a.sub.as_ref());
    o.opt_str("iss", a.iss.as_deref());
    o.list("aud", &a.aud);
    o.opt_text("jti", a.jti.as_ref());
    o.opt_int("iat", a.iat);
    o.opt_int("exp", a.exp);
    o.opt_str("kid", a.kid.as_deref());
    o.opt_str("alg", a.alg.as_deref());
    o.list("scopes", &a.scopes);
    o.list("roles", &a.roles);
    o.map("claims", &a.claims, serde_value);
    o.close();
}

fn write_request(out: &mut Vec<u8>, r: &Request) {
    let mut o = Obj::open(out);
    o.key("method");
    write_str(o.out, &r.method);
    o.opt_str("route", r.route.as_deref());
    o.key("path");
    write_text(o.out, &r.path);
    o.opt_text("raw_path", r.raw_path.as_ref());
    o.map("query", &r.query, write_text);
    o.opt_text("client_address", r.client_address.as_ref());
    o.opt_text("user_agent", r.user_agent.as_ref());
    o.opt_str("request_id", r.request_id.as_deref());
    o.opt_str("trace_id", r.trace_id.as_deref());
    o.opt_str("span_id", r.span_id.as_deref());
    o.map("headers", &r.headers, write_text);
    o.close();
}

fn write_authn(out: &mut Vec<u8>, a: &Authn) {
    let mut o = Obj::open(out);
    o.key("decision");
    o.raw_str(a.decision.as_str());
    o.opt_str("reason", a.reason.as_deref());
    o.close();
}

fn write_authz(out: &mut Vec<u8>, a: &Authz) {
    let mut o = Obj::open(out);
    o.key("decision");
    o.raw_str(a.decision.as_str());
    o.list("required_scopes", &a.required_scopes);
    o.list("required_roles", &a.required_roles);
    o.opt_str("reason", a.reason.as_deref());
    o.close();
}

fn write_token(out: &mut Vec<u8>, t: &TokenEvidence) {
    let mut o = Obj::open(out);
    o.key("mode");
    match t {
        TokenEvidence::Fingerprint {
            sha256,
            full_refused,
        } => {
            o.raw_str("fingerprint");
            o.key("sha256");
            write_str(o.out, sha256);
            if let Some(why) = full_refused {
                o.key("full_refused");
                o.raw_str(why.as_str());
            }
        }
        TokenEvidence::Full { sha256, jwt } => {
            o.raw_str("full");
            o.key("sha256");
            write_str(o.out, sha256);
            o.key("jwt");
            write_text(o.out, jwt);
        }
        TokenEvidence::None => o.raw_str("none"),
    }
    o.close();
}

/// A plain text as a string; a protected one (an object) through serde.
fn write_text(out: &mut Vec<u8>, t: &Text) {
    match t {
        Text::Plain(s) => write_str(out, s),
        protected => serde_value(out, protected),
    }
}

fn serde_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail; these values have string keys only.
    serde_json::to_writer(out, value).expect("serialises to JSON");
}

/// One JSON object being written: commas between members.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// A member name that needs no escaping (ours are ASCII identifiers).
    fn key(&mut self, name: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string value that needs no escaping (our enum names).
    fn raw_str(&mut self, s: &str) {
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }

    fn int(&mut self, n: impl itoa::Integer) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    fn uuid(&mut self, id: &Uuid) {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.raw_str(id.hyphenated().encode_lower(&mut buf));
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.key(name);
            write_str(self.out, v);
        }
    }

    fn opt_text(&mut self, name: &str, value: Option<&Text>) {
        if let Some(v) = value {
            self.key(name);
            write_text(self.out, v);
        }
    }

    fn opt_int(&mut self, name: &str, value: Option<i64>) {
        if let Some(n) = value {
            self.key(name);
            self.int(n);
        }
    }

    /// A list of strings, left out when empty.
    fn list(&mut self, name: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        self.key(name);
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, item);
        }
        self.out.push(b']');
    }

    /// A map, left out when empty.
    fn map<V>(&mut self, name: &str, map: &BTreeMap<String, V>, value: fn(&mut Vec<u8>, &V)) {
        if map.is_empty() {
            return;
        }
        self.key(name);
        let mut inner = Obj::open(self.out);
        for (k, v) in map {
            if !std::mem::take(&mut inner.first) {
                inner.out.push(b',');
            }
            write_str(inner.out, k);
            inner.out.push(b':');
            value(inner.out, v);
        }
        inner.close();
    }
}

/// Bytes serde_json escapes: control characters, `"` and `\`.
fn escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any of the eight bytes of `w` may need escaping (never a false "no").
fn any_escaped(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    below(w, 0x20) | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) != 0
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !any_escaped(w) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if escaped(b) {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{7f}\u{2028}");
        let samples = [
            String::new(),
            "plain ascii text that is longer than eight bytes".into(),
            "\"".into(),
            "\\".into(),
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}".into(),
            "12345678\"12345678\\1234567\u{0}".into(),
            all,
        ];
        for s in samples {
            let mut ours = Vec::new();
            write_str(&mut ours, &s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_word_check_never_misses_a_byte_to_escape() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                let mut word = [b'a'; 8];
                word[pos] = b;
                assert!(
                    any_escaped(u64::from_le_bytes(word)) || !escaped(b),
                    "byte {b:#x} at {pos}"
                );
            }
        }
    }
}
