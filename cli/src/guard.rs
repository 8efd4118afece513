//! `refrain dataset guard`: indexes the lead melodies of a built dataset into the memorisation
//! guard (engine::guard) that tells when a generated lead copies one of them.

use crate::spinner;
use anyhow::{Context, Result};
use clap::Args;
use refrain_engine::guard::{self, DEFAULT_NGRAM, GUARD_FILE};
use refrain_engine::writer;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct GuardArgs {
    /// Dataset folder made by `refrain dataset build`; every piece's lead is indexed, training
    /// and validation alike.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the index [default: melody-guard.bin in $REFRAIN_ASSETS, else the
    /// repository's assets/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Intervals per hashed run: a lead copies the corpus where it repeats runs this long.
    #[arg(long, default_value_t = DEFAULT_NGRAM as u8, value_parser = clap::value_parser!(u8).range(1..))]
    ngram: u8,
}

pub fn run(args: GuardArgs) -> Result<()> {
    let out = args
        .out
        .unwrap_or_else(|| writer::default_assets_dir().join(GUARD_FILE));
    let started = Instant::now();
    let reading = spinner(&format!("indexing the leads of {}", args.data.display()));
    let index = guard::build_from_dataset(&args.data, usize::from(args.ngram))?;
    reading.finish_and_clear();
    index.write(&out)?;
    let bytes = std::fs::metadata(&out)
        .with_context(|| format!("reading back {}", out.display()))?
        .len();
    eprintln!(
        "wrote {}: {} lead melodies, {} distinct runs of {} intervals, {bytes} bytes; dataset \
         manifest sha256 {} ({:.1} s)",
        out.display(),
        index.melodies(),
        index.ngrams(),
        index.n(),
        index.manifest_sha256(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
