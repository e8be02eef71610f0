//! The record layout shared by a replica's sink and the sequencer.
//!
//! A replica's writer serializes each event as the log would store it, with a *provisional*
//! index: the replica's own count of the records it has published since it started (its
//! writer needs some index, and has no way to know the log's). The record goes to the
//! stream with that index; the sequencer replaces it with the event's log index as it
//! integrates the event, so the record the tree commits to carries its real index, and is
//! otherwise byte for byte what the replica published. The event id (the `Nats-Msg-Id` of
//! the message) is never changed.
//!
//! The writer lays every record out as `{"v":1,"id":"<36-character uuid>","index":N,…}`;
//! the sequencer relies on that layout and refuses any other (a record from something that
//! is not a veritrail writer is not integrated: see the sequencer's `malformed` gap records).

/// The bytes before the id: `{"v":1,"id":"`.
const BEFORE_ID: &[u8] = b"{\"v\":1,\"id\":\"";
/// Between the id and the index digits.
const BEFORE_INDEX: &[u8] = b"\",\"index\":";
const ID_LEN: usize = 36;
/// Where the index digits start.
const INDEX_AT: usize = BEFORE_ID.len() + ID_LEN + BEFORE_INDEX.len();
/// The most digits a `u64` takes.
const MAX_DIGITS: usize = 20;

/// An event id: the canonical text of a UUID (36 bytes, lowercase hex and dashes).
pub type EventId = [u8; ID_LEN];

/// A record in the writer's layout: where its id and its index digits are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// End of the index digits (the byte after the last digit, a `,`).
    index_end: usize,
}

impl Layout {
    /// Checks that `record` is in the writer's layout: the `v` and `id` fields first, a
    /// canonical lowercase UUID as id, then a decimal `index` followed by more fields.
    /// Whether the rest is JSON is for the caller to check.
    pub fn of(record: &[u8]) -> Option<Layout> {
        if !record.starts_with(BEFORE_ID)
            || record.get(INDEX_AT - BEFORE_INDEX.len()..INDEX_AT) != Some(BEFORE_INDEX)
            || !is_canonical_uuid(&record[BEFORE_ID.len()..BEFORE_ID.len() + ID_LEN])
        {
            return None;
        }
        let digits = record[INDEX_AT..]
            .iter()
            .take(MAX_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let index_end = INDEX_AT + digits;
        let well_formed = (1..=MAX_DIGITS).contains(&digits)
            && (digits == 1 || record[INDEX_AT] != b'0')
            && record.get(index_end) == Some(&b',')
            && record.last() == Some(&b'}');
        well_formed.then_some(Layout { index_end })
    }

    /// The record's event id.
    pub fn id<'a>(&self, record: &'a [u8]) -> &'a EventId {
        record[BEFORE_ID.len()..BEFORE_ID.len() + ID_LEN]
            .try_into()
            .expect("36 bytes")
    }

    /// Appends `record` to `out` with its index replaced by `index`.
    pub fn write_with_index(&self, record: &[u8], index: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&record[..INDEX_AT]);
        out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        out.extend_from_slice(&record[self.index_end..]);
    }
}

/// The id of a record in the writer's layout, as text.
pub fn event_id(record: &[u8]) -> Option<&str> {
    let layout = Layout::of(record)?;
    std::str::from_utf8(layout.id(record)).ok()
}

fn is_canonical_uuid(id: &[u8]) -> bool {
    id.len() == ID_LEN
        && id.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use veritrail_core::event::AuditEvent;

    fn record(event: &AuditEvent, index: u64) -> Vec<u8> {
        let mut out = Vec::new();
        event.write_json(index, &mut out);
        out
    }

    #[test]
    fn rewriting_the_index_gives_what_the_writer_would_have_written() {
        let events = [
            AuditEvent::http("GET", "/a").status(200).build(),
            AuditEvent::start("example.com/log"),
            AuditEvent::gap(
                3,
                "queue_full",
                time::OffsetDateTime::UNIX_EPOCH,
                time::OffsetDateTime::UNIX_EPOCH,
            ),
        ];
        for event in &events {
            for (provisional, real) in [(0, 0), (7, 123_456), (99_999, 1), (0, u64::MAX)] {
                let published = record(event, provisional);
                let layout = Layout::of(&published).expect("the writer's layout");
                let mut out = Vec::new();
                layout.write_with_index(&published, real, &mut out);
                assert_eq!(out, record(event, real));
                assert_eq!(layout.id(&published), event.id.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let good = record(&AuditEvent::http("GET", "/").status(200).build(), 42);
        assert!(Layout::of(&good).is_some());
        let text = String::from_utf8(good.clone()).unwrap();
        let bad = [
            text.replacen("\"v\":1", "\"v\":2", 1),
            text.replacen("\"index\":42", "\"index\":042", 1),
            text.replacen("\"index\":42", "\"index\":", 1),
            text.replacen("\"index\":42", "\"index\":-1", 1),
            text.replacen("\"index\":42", "\"index\":123456789012345678901", 1),
            text.replacen("\"index\":42,", "\"index\":42}", 1),
            text.to_uppercase(),
            text[..text.len() - 1].to_string(),
            String::new(),
            "{\"v\":1,\"id\":\"".into(),
        ];
        for b in bad {
            assert_eq!(Layout::of(b.as_bytes()), None, "{b}");
        }
    }
}
