//! Writes the seed corpus of every fuzz target into `$VERITRAIL_FUZZ_SEEDS/TARGET/NAME` (see
//! `veritrail_fuzz::seeds`); run it as `seed-corpus -runs=0`.
//!
//! It is a libFuzzer binary like the targets (an ordinary `main` would not link: every crate of
//! the fuzz build is instrumented with libFuzzer's coverage hooks), which does its work in the
//! one-time initialisation and fuzzes nothing.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let Some(out) = std::env::var_os("VERITRAIL_FUZZ_SEEDS").map(PathBuf::from) else {
            eprintln!("seed-corpus: set VERITRAIL_FUZZ_SEEDS to the output directory");
            std::process::exit(2);
        };
        let vectors = std::env::var_os("VERITRAIL_VECTORS").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors")),
            PathBuf::from,
        );
        let seeds = veritrail_fuzz::seeds::all(&vectors);
        for (target, name, bytes) in &seeds {
            let dir = out.join(target);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        eprintln!("seed-corpus: {} seeds written to {}", seeds.len(), out.display());
    },
    |_data: &[u8]| {}
);
