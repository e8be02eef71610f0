//! Signed notes, checkpoints and key texts (veritrail-log `note` and `checkpoint`).
//!
//! Input: one mode byte, then UTF-8 text:
//! - 0: a signed note, opened with the fixture verifier, and as a checkpoint;
//! - 1: a note text, signed here then opened: what is opened is what was signed;
//! - 2: a checkpoint body: a parsed body prints back to the same text, and signs and opens
//!   back to the same checkpoint;
//! - 3: a verifier or signer key text: a parsed key prints back to a text that parses to it.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use veritrail_fuzz::{note_signer, note_verifier};
use veritrail_log::Checkpoint;
use veritrail_log::note::{self, NoteSigner, NoteVerifier};

static KEYS: LazyLock<(NoteSigner, NoteVerifier)> =
    LazyLock::new(|| (note_signer(), note_verifier()));

fuzz_target!(|data: &[u8]| {
    let (signer, verifier) = &*KEYS;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(body) = note::open(text, verifier) {
                assert!(text.starts_with(body));
            }
            let _ = Checkpoint::open(text, verifier);
        }
        1 => {
            if let Ok(signed) = signer.sign(text) {
                assert_eq!(note::open(&signed, verifier), Ok(text));
                assert_eq!(
                    Checkpoint::open(&signed, verifier).ok(),
                    Checkpoint::parse_body(text).ok()
                );
            }
        }
        2 => {
            if let Ok(checkpoint) = Checkpoint::parse_body(text) {
                assert_eq!(checkpoint.to_body(), text);
                let signed = checkpoint.sign(signer).expect("a parsed checkpoint signs");
                assert_eq!(Checkpoint::open(&signed, verifier), Ok(checkpoint));
            }
        }
        _ => {
            if let Ok(key) = NoteVerifier::from_text(text) {
                assert_eq!(NoteVerifier::from_text(&key.to_text()), Ok(key));
            }
            if let Ok(key) = NoteSigner::from_text(text) {
                let again = NoteSigner::from_text(&key.to_text()).expect("own text parses");
                assert_eq!(again.verifier(), key.verifier());
            }
        }
    }
});
