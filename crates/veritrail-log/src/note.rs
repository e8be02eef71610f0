//! C2SP signed notes (Ed25519).
//!
//! CONTRACT:
//!
//! ```ignore
//! /// A private key; Debug never prints the key. Text form `PRIVATE+KEY+name+hexid+base64`.
//! pub struct NoteSigner { .. }
//! impl NoteSigner {
//!     pub fn generate(name: &str) -> Result<Self, NoteError>;
//!     pub fn from_text(text: &str) -> Result<Self, NoteError>;  // trims surrounding whitespace
//!     pub fn to_text(&self) -> zeroize::Zeroizing<String>;
//!     pub fn name(&self) -> &str;
//!     pub fn key_id(&self) -> u32;
//!     pub fn verifier(&self) -> NoteVerifier;
//!     /// Signs a note body (must end in '\n'); returns body + "\n" + signature line(s).
//!     pub fn sign(&self, body: &str) -> Result<String, NoteError>;
//! }
//! /// Verifier key, text form `name+hexid+base64`.
//! #[derive(Clone, Debug, PartialEq, Eq)]
//! pub struct NoteVerifier { .. }
//! impl NoteVerifier {
//!     pub fn from_text(text: &str) -> Result<Self, NoteError>;
//!     pub fn to_text(&self) -> String;
//!     pub fn name(&self) -> &str;
//!     pub fn key_id(&self) -> u32;
//! }
//! /// Parses a signed note and checks it carries a valid signature by `verifier`;
//! /// signatures by unknown keys are ignored (C2SP), a bad signature by the known key is an error.
//! /// Returns the body (text up to and including the final '\n' before the blank line).
//! pub fn open<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError>;
//! ```
