//! Progress bars on stderr (indicatif) for long runs — only when a person is watching.
//!
//! A bar is drawn only when stderr is a terminal, and, for commands that print their results
//! on stdout, only when stdout is not that same terminal (rows and a redrawn bar on one screen
//! garble each other). Short runs get no bar at all. Everything else gets a hidden bar, so the
//! calling code is the same either way.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Runs over fewer records than this finish too fast for a bar to help.
pub(crate) const LONG_RUN_RECORDS: u64 = 10_000;

/// Where the command's results go, which decides whether a bar may share the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Results {
    /// Printed on stdout.
    Stdout,
    /// Written to a file (or only a summary is printed at the end).
    Elsewhere,
}

fn visible(results: Results) -> bool {
    std::io::stderr().is_terminal()
        && (results == Results::Elsewhere || !std::io::stdout().is_terminal())
}

/// A bar over `total` records labelled `what`, or a hidden one (see the module docs).
pub(crate) fn records(total: u64, what: &str, results: Results) -> ProgressBar {
    if total < LONG_RUN_RECORDS || !visible(results) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {human_pos}/{human_len} records ({per_sec}, {eta} left)",
        )
        .expect("a valid progress template"),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A spinner labelled `what` for work whose size is not known up front, or a hidden one.
pub(crate) fn spinner(what: &str, results: Results) -> ProgressBar {
    if !visible(results) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("a valid progress template"),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
