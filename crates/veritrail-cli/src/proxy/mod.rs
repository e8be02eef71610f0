//! `veritrail proxy` (being written).
use anyhow::{Result, bail};

use crate::cli::ProxyArgs;

/// Runs the proxy.
pub(crate) fn run(_args: &ProxyArgs) -> Result<()> {
    bail!("not yet")
}
