//! The C2SP signed-note vectors in the shared vectors folder (`signed-note/VECTORS.md`), read at
//! test time from the vectors folder that `support/vectors.rs` finds.

use veritrail_log::note::{self, NoteError, NoteSigner, NoteVerifier};

#[path = "support/vectors.rs"]
mod support;
use support::vectors_dir;

fn vectors_md() -> String {
    let path = vectors_dir().join("signed-note/VECTORS.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (set VERITRAIL_VECTORS to the shared vectors folder)",
            path.display()
        )
    })
}

/// The text between the first backquote pair that starts with `prefix`.
fn quoted<'a>(md: &'a str, prefix: &str) -> &'a str {
    let start = md
        .find(&format!("`{prefix}"))
        .unwrap_or_else(|| panic!("no `{prefix}` in VECTORS.md"))
        + 1;
    let end = start + md[start..].find('`').unwrap();
    &md[start..end]
}

/// Vector 1: the note inside the fenced block (indented in the markdown list).
fn vector1_note(md: &str) -> String {
    let start = md.find("```\n").unwrap() + 4;
    let end = start + md[start..].find("```").unwrap();
    md[start..end]
        .trim_end_matches(' ')
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect()
}

#[test]
fn vector1_verifies_and_rejects_alterations() {
    let md = vectors_md();
    let verifier = NoteVerifier::from_text(quoted(&md, "example.com/foo+")).unwrap();
    assert_eq!(verifier.name(), "example.com/foo");
    assert_eq!(verifier.key_id(), 0x530d903a);
    let signed = vector1_note(&md);
    assert!(signed.starts_with("This is an example message.\n\n\u{2014} example.com/foo "));
    assert_eq!(
        note::open(&signed, &verifier).unwrap(),
        "This is an example message.\n"
    );
    // The verifier key text round-trips exactly.
    assert_eq!(verifier.to_text(), quoted(&md, "example.com/foo+"));

    // One changed byte of text: the known key's signature fails, so the note is refused.
    let altered = signed.replacen("example message", "example massage", 1);
    assert!(matches!(
        note::open(&altered, &verifier),
        Err(NoteError::BadSignature { .. })
    ));
    // A different key under the same name is ignored, leaving no trusted signature.
    let other = NoteSigner::generate("example.com/foo").unwrap().verifier();
    assert!(matches!(
        note::open(&signed, &other),
        Err(NoteError::NotSigned { .. })
    ));
}

#[test]
fn vector2_deterministic_signature_and_key_ids() {
    let md = vectors_md();
    let private = quoted(&md, "PRIVATE+KEY+PeterNeumann+");
    let signer = NoteSigner::from_text(private).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(&*signer.to_text(), private);
    let verifier_text = quoted(&md, "PeterNeumann+c74f20a3+");
    assert_eq!(signer.verifier().to_text(), verifier_text);

    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let sig_line = quoted(&md, "\u{2014} PeterNeumann ");
    let signed = signer.sign(text).unwrap();
    assert_eq!(signed, format!("{text}\n{sig_line}\n"));

    let verifier = NoteVerifier::from_text(verifier_text).unwrap();
    assert_eq!(note::open(&signed, &verifier).unwrap(), text);
}

#[test]
fn a_note_signed_by_two_keys_opens_with_either() {
    let md = vectors_md();
    let peter = NoteSigner::from_text(quoted(&md, "PRIVATE+KEY+PeterNeumann+")).unwrap();
    let other = NoteSigner::generate("witness.example/w1").unwrap();
    let text = "two signers\n";
    let by_peter = peter.sign(text).unwrap();
    let other_line = other.sign(text).unwrap();
    let both = format!("{by_peter}{}", &other_line[text.len() + 1..]);
    assert_eq!(note::open(&both, &peter.verifier()).unwrap(), text);
    assert_eq!(note::open(&both, &other.verifier()).unwrap(), text);
}
