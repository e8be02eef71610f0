//! `veritrail export LOG --format ocsf`: the audit events as OCSF JSON, one object per line
//! (see [`crate::ocsf`] for the mapping), on stdout or into `--out FILE`.

use anyhow::Result;
use time::OffsetDateTime;
use veritrail_log::source::{LogSource, Records};

use crate::cli::{ExportArgs, ExportFormat};
use crate::events::{Scan, each_event, with_selected};
use crate::filter::Filter;
use crate::lines::Lines;
use crate::ocsf;
use crate::output::plural;
use crate::progress::{self, Results};

/// Exports the selected events.
pub(crate) fn run(args: &ExportArgs) -> Result<()> {
    let ExportFormat::Ocsf = args.format;
    let filter = Filter::from_args(&args.filter, OffsetDateTime::now_utc())?;
    with_selected(&args.log, &filter, |log, records| {
        export(args, &filter, log, records)
    })
}

fn export(
    args: &ExportArgs,
    filter: &Filter,
    log: &dyn LogSource,
    records: Records<'_>,
) -> Result<()> {
    let (mut out, results) = match &args.out {
        Some(path) => (Lines::file(path)?, Results::Elsewhere),
        None => (Lines::stdout(), Results::Stdout),
    };
    let origin = log.origin().to_owned();
    let bar = progress::records(log.size(), "exporting", results);
    let mut scan = Scan::default();
    let (mut events, mut written) = (0u64, 0u64);
    each_event(records, &log.location(), &mut scan, |index, _, event| {
        bar.inc(1);
        if filter.matches(event) {
            let objects = ocsf::events(index, event, &origin);
            events += u64::from(!objects.is_empty());
            for object in objects {
                out.line(object.to_string().as_bytes())?;
                written += 1;
            }
        }
        Ok(!out.is_closed())
    })?;
    bar.finish_and_clear();
    out.flush()?;
    scan.report(&args.log.display().to_string());
    if let Some(path) = &args.out {
        eprintln!(
            "wrote {} (OCSF {}) for {} to {}",
            plural(written, "object"),
            ocsf::OCSF_VERSION,
            plural(events, "request"),
            path.display()
        );
    }
    Ok(())
}
