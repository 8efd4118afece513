//! `refrain score SONG.mid`: the critic alone judges any MIDI file, segment by segment, the
//! way the reasoning loop judges candidates.

use anyhow::Result;
use clap::Args;
use refrain_engine::music::{Mood, Style};
use refrain_engine::writer::{self, CpuBackend};
use refrain_scorer::LearnedCritic;
use std::path::PathBuf;

#[derive(Args)]
pub struct ScoreArgs {
    /// The MIDI file (type 0 or 1).
    midi: PathBuf,
    /// Print the full verdict as JSON (overall, aspects, and every segment with reasons).
    #[arg(long)]
    json: bool,
    /// Style to judge it as (default: the style the file names, else lofi).
    #[arg(long, value_parser = crate::parse_style)]
    style: Option<Style>,
    /// Mood to judge it as.
    #[arg(long, value_parser = crate::parse_mood, default_value = "calm")]
    mood: Mood,
    /// Bars per judged window (the writer's is 8).
    #[arg(long, default_value_t = 8)]
    window: u32,
    /// Folder holding critic.safetensors; default $REFRAIN_ASSETS, else the repository's
    /// assets/.
    #[arg(long)]
    assets: Option<PathBuf>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let song = crate::read_midi_file(&args.midi, args.style)?;
    let assets = args.assets.unwrap_or_else(writer::default_assets_dir);
    let critic = LearnedCritic::<CpuBackend>::load(&assets, &Default::default())?;
    let score = critic.score_song(&song, args.mood, args.window)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&score)?);
        return Ok(());
    }
    println!(
        "{}: overall {:.2} (weakest segment {:.2}); {}",
        args.midi.display(),
        score.overall,
        score.weakest,
        score
            .aspects
            .iter()
            .map(|(a, v)| format!("{a} {v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for segment in &score.segments {
        println!(
            "  bars {}-{}: {:.2}; {}",
            segment.bars[0] + 1,
            segment.bars[1],
            segment.overall,
            segment.reasons.first().cloned().unwrap_or_default()
        );
    }
    Ok(())
}
