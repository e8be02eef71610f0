//! The `time` field format: UTC RFC 3339 with exactly six fractional digits and `Z`,
//! e.g. `2026-11-27T12:00:00.123456Z`. Written by hand into a stack buffer (no allocation);
//! read with any RFC 3339 offset and normalised to UTC.

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

const LEN: usize = 27;

/// Converts to UTC and drops sub-microsecond digits, so that a written time reads back equal.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1000)
        .expect("a smaller nanosecond is in range")
}

/// Formats `t` (converted to UTC) into `buf`; years outside 0..=9999 are clamped, since
/// RFC 3339 cannot express them.
pub(crate) fn format<'a>(t: &OffsetDateTime, buf: &'a mut [u8; LEN]) -> &'a str {
    let t = t.to_offset(UtcOffset::UTC);
    let year = t.year().clamp(0, 9999) as u32;
    let fields: [(usize, u32, usize); 7] = [
        (0, year, 4),
        (5, u8::from(t.month()) as u32, 2),
        (8, t.day() as u32, 2),
        (11, t.hour() as u32, 2),
        (14, t.minute() as u32, 2),
        (17, t.second() as u32, 2),
        (20, t.microsecond(), 6),
    ];
    *buf = *b"0000-00-00T00:00:00.000000Z";
    for (at, mut value, width) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).expect("ASCII digits")
}

pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; LEN];
    s.serialize_str(format(t, &mut buf))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    let t = OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom)?;
    Ok(t.to_offset(UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_six_digits_in_utc() {
        let mut buf = [0u8; LEN];
        let t = datetime!(2026-01-02 03:04:05.000_007_900 +02:00);
        assert_eq!(format(&t, &mut buf), "2026-01-02T01:04:05.000007Z");
        let t = datetime!(0999-12-31 23:59:59 UTC);
        assert_eq!(format(&t, &mut buf), "0999-12-31T23:59:59.000000Z");
    }

    #[test]
    fn reads_back_what_it_writes() {
        let t = truncate(datetime!(2026-11-27 12:00:00.123_456_789 -05:00));
        let mut buf = [0u8; LEN];
        let s = format(&t, &mut buf).to_owned();
        let back = OffsetDateTime::parse(&s, &Rfc3339).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.nanosecond(), 123_456_000);
    }
}
