//! How a failed command maps to an exit code: 1 when the data is invalid (a verification
//! failure, a malformed input line or proof), 2 for usage and I/O errors. Scripts rely on it.

use std::fmt;

use veritrail_log::store::LogError;

/// The data the command was given is invalid or failed verification (exit code 1).
///
/// Attach it with [`invalid`]; anything else that goes wrong is a usage or I/O error (exit 2).
#[derive(Debug)]
pub(crate) struct InvalidData(String);

impl fmt::Display for InvalidData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidData {}

/// An exit-code-1 error with this message.
pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
    InvalidData(message.into()).into()
}

/// The command has already told the user why it failed (`verify` prints its verdict itself);
/// exit with this code and print nothing more.
#[derive(Debug)]
pub(crate) struct Reported(pub(crate) u8);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed (exit code {}), reported above", self.0)
    }
}

impl std::error::Error for Reported {}

/// Exit code for a verification failure or invalid input data.
pub(crate) const INVALID: u8 = 1;
/// Exit code for a usage or I/O error.
pub(crate) const USAGE_OR_IO: u8 = 2;

/// The exit code for `err`: the code of a [`Reported`] error, [`INVALID`] if anything in its
/// chain is [`InvalidData`] or a [`LogError`] about the data, [`USAGE_OR_IO`] otherwise.
pub(crate) fn code_for(err: &anyhow::Error) -> u8 {
    if let Some(Reported(code)) = err.downcast_ref::<Reported>() {
        *code
    } else if err
        .chain()
        .any(|cause| cause.is::<InvalidData>() || is_invalid_data(cause))
    {
        INVALID
    } else {
        USAGE_OR_IO
    }
}

/// Whether `cause` is the log library reporting damaged or inconsistent data, or a record it
/// cannot take (not a failure to read or write).
fn is_invalid_data(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        cause.downcast_ref::<LogError>(),
        Some(
            LogError::Corrupt { .. }
                | LogError::Damaged { .. }
                | LogError::InconsistentCheckpoint { .. }
                | LogError::RecordTooLarge { .. }
                | LogError::NoCheckpointHistory { .. }
        )
    )
}
