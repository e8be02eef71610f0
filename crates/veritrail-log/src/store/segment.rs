//! The segment file format: a header, then framed records.
//!
//! ```text
//! header (24 bytes): "VTLOGSEG" | version u32 LE (1) | first index u64 LE
//!                    | crc32c of the 20 bytes before, u32 LE
//! frame:             length u32 LE | crc32c(length LE bytes ‖ record) u32 LE | record bytes
//! ```
//!
//! The checksum covers the length too, so a damaged length is caught rather than misframing
//! every record after it. The header carries the index of the segment's first record, so a
//! verifier can check that segments follow each other without gaps or overlaps.

use std::fmt;

/// Identifies a segment file.
pub(crate) const MAGIC: &[u8; 8] = b"VTLOGSEG";
/// The segment format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Length of the segment header.
pub(crate) const HEADER_LEN: usize = 24;
/// Length of a frame header (length + checksum).
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// The largest record the log accepts (64 MiB).
pub(crate) const MAX_RECORD_LEN: usize = 64 << 20;

/// The header of a segment whose first record has index `first`.
pub(crate) fn header(first: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// Not a segment file.
    BadMagic,
    /// A format version this code does not know.
    Version(u32),
    /// The header checksum does not match.
    Checksum,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short => write!(
                f,
                "segment header is incomplete ({HEADER_LEN} bytes needed)"
            ),
            Self::BadMagic => write!(f, "not a veritrail segment (bad magic bytes)"),
            Self::Version(v) => write!(
                f,
                "segment format version {v} is not supported (this build reads version {VERSION})"
            ),
            Self::Checksum => write!(f, "segment header checksum mismatch"),
        }
    }
}

/// Parses a segment header; returns the first index it names.
pub(crate) fn parse_header(data: &[u8]) -> Result<u64, HeaderProblem> {
    if data.len() < HEADER_LEN {
        return Err(HeaderProblem::Short);
    }
    if &data[..8] != MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let stored_crc = u32::from_le_bytes(data[20..24].try_into().expect("4 bytes"));
    if crc32c::crc32c(&data[..20]) != stored_crc {
        return Err(HeaderProblem::Checksum);
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(HeaderProblem::Version(version));
    }
    Ok(u64::from_le_bytes(
        data[12..20].try_into().expect("8 bytes"),
    ))
}

/// The frame checksum of `record`: crc32c over the little-endian length, then the record.
pub(crate) fn frame_crc(record: &[u8]) -> u32 {
    let len = record.len() as u32;
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), record)
}

/// Appends the frame of `record` (whose [`frame_crc`] is `crc`) to `buf`.
pub(crate) fn push_frame(buf: &mut Vec<u8>, record: &[u8], crc: u32) {
    buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(record);
}

/// What is wrong with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameProblem {
    /// Fewer than 8 bytes remain: the frame header itself is cut.
    ShortHeader,
    /// The length runs past the end of the segment.
    PastEnd {
        /// The length the frame header claims.
        len: u64,
    },
    /// The length is larger than any record the log writes.
    TooLarge {
        /// The length the frame header claims.
        len: u64,
    },
    /// The checksum does not match the length and record bytes.
    Checksum,
    /// The rest of the segment is zero bytes (a file extended by a crash, never written).
    Zeros,
}

impl fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader => write!(f, "frame header cut short"),
            Self::PastEnd { len } => {
                write!(f, "frame length {len} runs past the end of the segment")
            }
            Self::TooLarge { len } => write!(
                f,
                "frame length {len} is larger than the largest record ({MAX_RECORD_LEN} bytes)"
            ),
            Self::Checksum => write!(f, "checksum mismatch"),
            Self::Zeros => write!(f, "zero bytes where a frame should start"),
        }
    }
}

/// The first bad frame of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadFrame {
    /// Byte offset of the frame in the segment file.
    pub(crate) offset: u64,
    /// What is wrong.
    pub(crate) problem: FrameProblem,
    /// Whether the damage runs to the end of the file, as an interrupted append leaves it. Only
    /// such damage, in the newest segment and after the last checkpoint, is a torn tail.
    pub(crate) at_tail: bool,
}

/// Walks the frames of a segment's bytes (`data` includes the header) and calls
/// `each(offset, record)` for every good frame, in order. Stops at the first bad frame and
/// returns it; `None` when every byte belongs to a good frame.
pub(crate) fn scan(data: &[u8], each: impl FnMut(u64, &[u8])) -> Option<BadFrame> {
    match scan_from(data, HEADER_LEN.min(data.len()), true, each) {
        ScanStop::Bad(bad) => Some(bad),
        ScanStop::End | ScanStop::NeedMore(_) | ScanStop::NeedRest(_) => None,
    }
}

/// Where [`scan_from`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// Every byte belongs to a good frame (only when `at_eof`).
    End,
    /// The frame at this position is not complete in `data`: read more and scan from here.
    NeedMore(usize),
    /// The frame at this position is bad, and whether that is a torn tail depends on the rest
    /// of the file: read all of it and scan again from here with `at_eof`.
    NeedRest(usize),
    /// The first bad frame (only when `at_eof`).
    Bad(BadFrame),
}

/// Like [`scan`], over a window of a segment: `data[start..]` begins at a frame boundary, and
/// `at_eof` says whether `data` runs to the end of the file. Offsets are positions in `data`.
pub(crate) fn scan_from(
    data: &[u8],
    start: usize,
    at_eof: bool,
    mut each: impl FnMut(u64, &[u8]),
) -> ScanStop {
    let mut pos = start;
    while pos < data.len() {
        let rest = &data[pos..];
        let (problem, at_tail) = match check_frame(rest) {
            Ok(len) => {
                each(pos as u64, &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len]);
                pos += FRAME_HEADER_LEN + len;
                continue;
            }
            Err((_, true)) if !at_eof => return ScanStop::NeedMore(pos),
            Err(_) if !at_eof => return ScanStop::NeedRest(pos),
            // A crash can leave an extended but never written (zero-filled) file end.
            Err(_) if rest.iter().all(|&b| b == 0) => (FrameProblem::Zeros, true),
            Err(bad) => bad,
        };
        return ScanStop::Bad(BadFrame {
            offset: pos as u64,
            problem,
            at_tail,
        });
    }
    if at_eof {
        ScanStop::End
    } else {
        ScanStop::NeedMore(pos)
    }
}

/// Checks the frame at the start of `rest`; returns its record length, or the problem and
/// whether the damage runs to the end of `rest`.
fn check_frame(rest: &[u8]) -> Result<usize, (FrameProblem, bool)> {
    if rest.len() < FRAME_HEADER_LEN {
        return Err((FrameProblem::ShortHeader, true));
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let body = &rest[FRAME_HEADER_LEN..];
    if len > body.len() {
        return Err((FrameProblem::PastEnd { len: len as u64 }, true));
    }
    if len > MAX_RECORD_LEN {
        return Err((FrameProblem::TooLarge { len: len as u64 }, false));
    }
    if frame_crc(&body[..len]) != crc {
        return Err((FrameProblem::Checksum, len == body.len()));
    }
    Ok(len)
}

/// The file name of the segment whose first record has index `first`.
pub(crate) fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Parses a segment file name back into its first index.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut data = header(7).to_vec();
        for r in records {
            push_frame(&mut data, r, frame_crc(r));
        }
        data
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = header(123_456);
        assert_eq!(parse_header(&h), Ok(123_456));
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x40;
            assert!(parse_header(&bad).is_err(), "flipped header byte {i}");
        }
        assert_eq!(parse_header(&h[..10]), Err(HeaderProblem::Short));
    }

    #[test]
    fn scan_reads_every_frame() {
        let data = segment(&[b"a", b"", b"ccc"]);
        let mut seen = Vec::new();
        assert_eq!(scan(&data, |off, r| seen.push((off, r.to_vec()))), None);
        assert_eq!(
            seen,
            vec![(24, b"a".to_vec()), (33, Vec::new()), (41, b"ccc".to_vec())]
        );
    }

    #[test]
    fn damage_in_the_middle_is_not_a_tail() {
        let mut data = segment(&[b"first", b"second"]);
        data[HEADER_LEN + 9] ^= 1; // inside "first"
        let bad = scan(&data, |_, _| {}).expect("damage found");
        assert_eq!(bad.offset, HEADER_LEN as u64);
        assert_eq!(bad.problem, FrameProblem::Checksum);
        assert!(!bad.at_tail);
    }

    #[test]
    fn every_cut_of_the_last_frame_is_a_tail() {
        let data = segment(&[b"first", b"second"]);
        let last = HEADER_LEN + FRAME_HEADER_LEN + 5;
        for cut in last + 1..data.len() {
            let bad = scan(&data[..cut], |_, _| {}).expect("cut found");
            assert_eq!(bad.offset, last as u64, "cut at {cut}");
            assert!(bad.at_tail, "cut at {cut}");
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
    }
}
