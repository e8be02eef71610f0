//! Reading a JWS compact serialization before its signature is checked: bounded sizes, strict
//! base64url, a header that is checked against RFC 8725 before anything else looks at it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::keyset::parse_alg;

/// The JOSE header members this crate reads. Unknown members are ignored (a repeated name,
/// read here or not, is refused before this struct is filled: see [`unique_object`]).
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
}

/// A token split and parsed, signature not yet verified.
pub(crate) struct UnverifiedToken<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    /// `base64url(header) . base64url(payload)`: the signed bytes.
    pub(crate) signing_input: &'a [u8],
    pub(crate) signature: &'a str,
    pub(crate) claims: Map<String, Value>,
}

/// Limits applied before any decoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeLimits {
    pub(crate) max_token: usize,
    pub(crate) max_header: usize,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(what))
}

/// Splits and parses `token`, applying the header rules of RFC 8725 (alg from the key, never
/// `none`; no keys named in the token; no unknown `crit`).
pub(crate) fn parse(token: &str, limits: SizeLimits) -> Result<UnverifiedToken<'_>, AuthError> {
    if token.len() > limits.max_token {
        return Err(AuthError::TokenTooLarge {
            max: limits.max_token,
        });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "a JWS compact token has exactly three parts",
        ));
    };
    if header.len() > limits.max_header {
        return Err(AuthError::HeaderTooLarge {
            max: limits.max_header,
        });
    }
    let header_json = b64(header, "the header is not base64url")?;
    let not_a_header = || AuthError::Malformed("the header is not a valid JOSE header object");
    let members = unique_object(&header_json, "header").ok_or_else(not_a_header)??;
    let raw = RawHeader::deserialize(Value::Object(members)).map_err(|_| not_a_header())?;
    if raw.alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgNone);
    }
    for (present, name) in [
        (raw.jwk.is_some(), "jwk"),
        (raw.jku.is_some(), "jku"),
        (raw.x5u.is_some(), "x5u"),
        (raw.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(AuthError::EmbeddedKey(name));
        }
    }
    // This crate understands no JWS extension, so any `crit` (even an empty or malformed
    // one, which RFC 7515 forbids) is refused.
    if raw.crit.is_some() {
        return Err(AuthError::CritUnsupported);
    }
    let alg = parse_alg(&raw.alg).ok_or(AuthError::AlgUnsupported)?;
    let payload_json = b64(payload, "the payload is not base64url")?;
    let claims = unique_object(&payload_json, "claims")
        .ok_or(AuthError::Malformed("the payload is not a JSON object"))??;
    if signature.is_empty() {
        return Err(AuthError::Malformed("the signature is empty"));
    }
    let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
    Ok(UnverifiedToken {
        alg,
        kid: raw.kid,
        typ: raw.typ,
        signing_input,
        signature,
        claims,
    })
}

/// Parses `json` as one JSON object in which no object, at any depth, repeats a member name.
/// `None`: not JSON, or not an object; `Some(Err)`: a repeated name.
///
/// RFC 7515 §4 and RFC 7519 §4 require unique header parameter and claim names, and
/// serde_json's own maps keep the last of two equal names while other parsers keep the first:
/// an upstream reading the token again could see another subject than the one verified here.
/// Names are compared after JSON unescaping (`"s\u0075b"` is `"sub"`).
fn unique_object(json: &[u8], part: &'static str) -> Option<Result<Map<String, Value>, AuthError>> {
    match serde_json::from_slice::<UniqueNames>(json) {
        Ok(UniqueNames(Value::Object(map))) => Some(Ok(map)),
        Ok(_) => None,
        // Syntax errors are `Syntax`/`Eof`; the only data error [`UniqueNames`] raises is a
        // repeated name.
        Err(e) if e.is_data() => Some(Err(AuthError::DuplicateName(part))),
        Err(_) => None,
    }
}

/// A JSON value whose objects (at every depth) have unique member names.
struct UniqueNames(Value);

impl<'de> Deserialize<'de> for UniqueNames {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueNamesVisitor)
            .map(UniqueNames)
    }
}

struct UniqueNamesVisitor;

impl<'de> Visitor<'de> for UniqueNamesVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueNames(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let UniqueNames(value) = access.next_value()?;
            if map.insert(name, value).is_some() {
                return Err(de::Error::custom("a member name is repeated"));
            }
        }
        Ok(Value::Object(map))
    }
}

/// Decodes the signature part.
pub(crate) fn signature_bytes(signature: &str) -> Result<Vec<u8>, AuthError> {
    b64(signature, "the signature is not base64url")
}

/// Whether a `typ` header value names the media type `expected` (RFC 7515 §4.1.9: compare
/// case-insensitively, the `application/` prefix may be omitted).
pub(crate) fn typ_matches(typ: &str, expected: &str) -> bool {
    let strip = |s: &str| -> String {
        match s.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => s[12..].to_owned(),
            _ => s.to_owned(),
        }
    };
    strip(typ).eq_ignore_ascii_case(&strip(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SizeLimits = SizeLimits {
        max_token: 1000,
        max_header: 100,
    };

    fn tok(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn typ_comparison_follows_rfc7515() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(typ_matches("at+jwt", "application/at+jwt"));
        assert!(!typ_matches("JWT", "at+jwt"));
        assert!(!typ_matches("applicatio\u{20ac}/x", "x")); // no panic off a char boundary
    }

    #[test]
    fn header_rules_come_before_the_algorithm_lookup() {
        let p = r#"{"iss":"x"}"#;
        let err = |h: &str| parse(&tok(h, p), LIMITS).err();
        assert_eq!(err(r#"{"alg":"nOnE"}"#), Some(AuthError::AlgNone));
        assert_eq!(
            err(r#"{"alg":"XS1","jku":"u"}"#),
            Some(AuthError::EmbeddedKey("jku"))
        );
        assert_eq!(
            err(r#"{"alg":"RS256","crit":[]}"#),
            Some(AuthError::CritUnsupported)
        );
        assert_eq!(err(r#"{"alg":"XS1"}"#), Some(AuthError::AlgUnsupported));
        assert!(matches!(
            err(r#"{"kid":"k"}"#),
            Some(AuthError::Malformed(_))
        ));
        assert!(matches!(
            err(r#"{"alg":"RS256","kid":7}"#),
            Some(AuthError::Malformed(_))
        ));
        assert_eq!(err(r#"{"alg":"RS256"}"#), None);
    }

    #[test]
    fn repeated_names_are_refused_at_every_depth_and_spelling() {
        let dup = |h: &str, p: &str| parse(&tok(h, p), LIMITS).err();
        let ok = r#"{"alg":"RS256"}"#;
        assert_eq!(
            dup(ok, r#"{"sub":"a","x":{"sub":1,"y":[{"sub":2}]}}"#),
            None
        );
        for (header, claims, part) in [
            (ok, r#"{"sub":"a","sub":"b"}"#, "claims"),
            (ok, r#"{"sub":"a","s\u0075b":"b"}"#, "claims"),
            (ok, r#"{"act":{"sub":"a","sub":"b"}}"#, "claims"),
            (ok, r#"{"l":[{"k":1,"k":1}]}"#, "claims"),
            (r#"{"alg":"RS256","alg":"RS256"}"#, "{}", "header"),
            (r#"{"alg":"RS256","kid":"a","kid":"b"}"#, "{}", "header"),
            (r#"{"alg":"RS256","x":1,"x":2}"#, "{}", "header"),
            (r#"{"alg":"RS256","\u0078":1,"x":2}"#, "{}", "header"),
        ] {
            assert_eq!(
                dup(header, claims),
                Some(AuthError::DuplicateName(part)),
                "{header} {claims}"
            );
        }
        // Not JSON and repeating: refused, for the first problem the parser meets.
        assert_eq!(
            dup(ok, r#"{"sub":"a","sub":"b""#),
            Some(AuthError::DuplicateName("claims"))
        );
        assert!(matches!(
            dup(ok, r#"{"sub":"a","sub":}"#),
            Some(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn the_signing_input_is_header_dot_payload() {
        let t = tok(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#, r#"{"a":1}"#);
        let parsed = parse(&t, LIMITS).unwrap();
        assert_eq!(
            parsed.signing_input,
            t.rsplit_once('.').unwrap().0.as_bytes()
        );
        assert_eq!(
            (parsed.alg, parsed.kid.as_deref(), parsed.typ.as_deref()),
            (Algorithm::ES256, Some("k"), Some("JWT"))
        );
        assert_eq!(signature_bytes(parsed.signature).unwrap(), b"sig");
    }
}
