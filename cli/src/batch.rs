//! `refrain batch`: many songs from a JSON Lines request file, with the models loaded once.
//!
//! Every request becomes DIR/<id>/ through the same staged write and rename as `generate`, so an
//! item is either complete (its manifest.json is there) or absent. A run that was stopped picks
//! up where it left off: complete items are skipped, leftovers of unfinished ones are cleared.
//! The summary is written at the end, in request order, from the request file and the folders
//! alone, so an interrupted and resumed run ends with the same summary as an uninterrupted one;
//! how long each item took goes to a separate timing file, appended run after run.
//! docs/SCALE.md has the layout, sharding and throughput.

use crate::studio::{Studio, StudioArgs};
use crate::thinking::Judges;
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::batch::{self, BatchRequest, RequestLine, Shard, Status, SummaryLine};
use refrain_engine::reasoning::{Decision, TraceEvent};
use refrain_engine::words;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args)]
pub struct BatchArgs {
    /// The request file: one JSON object per line with an "id" (its folder's name in --out)
    /// and any of generate's request flags: prompt, style, mood, bpm, key, meter, seconds or
    /// bars, loop, stems, seed, think. E.g.
    /// {"id": "ad-01", "style": "lofi", "bpm": 80, "seconds": 30, "seed": 1}
    pub requests: PathBuf,
    /// Output folder: one folder per request (DIR/<id>/), summary.jsonl and timing.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// Take only shard I of N (I counts from 0): the requests at positions I, I+N, I+2N, ...
    /// of the file (blank lines are not requests). N workers with 0/N .. N-1/N cover the file
    /// exactly once.
    #[arg(long, default_value = "0/1", value_parser = parse_shard)]
    pub shard: Shard,
    /// Songs made at the same time, each on its own thread; the models are loaded once and
    /// shared, the critic and the memorisation guard once per thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Batch the DiT across the songs being made at once: each model pass evaluates up to N
    /// windows from all --jobs workers together (a GPU runs one large pass much faster than
    /// many small ones). Songs come out byte-identical either way. 0 keeps each song's
    /// windows to itself.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub batch_windows: u32,
    /// How long a DiT pass waits for workers busy elsewhere before it goes without them
    /// (milliseconds; with --batch-windows). Longer batches more reliably and idles more.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub batch_linger_ms: u64,
    #[command(flatten)]
    pub studio: StudioArgs,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    text.parse().map_err(words::message)
}

/// Where a request stands before this run writes anything.
enum Start {
    /// Unusable: the line's reason.
    Unusable(String),
    /// Its folder is complete.
    Done,
    /// To be written.
    Todo(BatchRequest),
}

/// The name of a shard's summary (or timing) file: `summary.jsonl` for the whole file,
/// `summary.shard-I-of-N.jsonl` for a shard, so shards writing into one folder never collide.
pub fn shard_file(stem: &str, shard: Shard) -> String {
    if shard.is_whole() {
        format!("{stem}.jsonl")
    } else {
        format!("{stem}.shard-{}-of-{}.jsonl", shard.index, shard.count)
    }
}

pub fn run(args: BatchArgs) -> Result<()> {
    let text = fs::read_to_string(&args.requests)
        .with_context(|| format!("reading the request file {}", args.requests.display()))?;
    let lines = batch::read_requests(&text);
    let mine = batch::shard_lines(&lines, args.shard);
    let out = &args.out;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let summary_path = out.join(shard_file("summary", args.shard));
    // A summary is only ever the end of a finished run: an old one goes before work starts.
    if summary_path.exists() {
        fs::remove_file(&summary_path)
            .with_context(|| format!("removing the old {}", summary_path.display()))?;
    }
    clear_unfinished(out, &mine)?;
    let mut timing = Timing::open(&out.join(shard_file("timing", args.shard)))?;

    let mut results: Vec<Result<(), String>> = Vec::with_capacity(mine.len());
    let mut todo: Vec<(usize, BatchRequest)> = Vec::new();
    for (slot, line) in mine.iter().enumerate() {
        let start = match &line.parsed {
            Err(reason) => Start::Unusable(reason.clone()),
            Ok(request) => match finished(out, request) {
                Ok(true) => Start::Done,
                Ok(false) => Start::Todo(request.clone()),
                Err(reason) => Start::Unusable(reason),
            },
        };
        match start {
            Start::Unusable(reason) => {
                eprintln!("line {}{}: {reason}", line.line, id_note(line));
                timing.record(line, "error", Duration::ZERO)?;
                results.push(Err(reason));
            }
            Start::Done => {
                timing.record(line, "skipped", Duration::ZERO)?;
                results.push(Ok(()));
            }
            Start::Todo(request) => {
                todo.push((slot, request));
                results.push(Ok(()));
            }
        }
    }
    let already = results.iter().filter(|r| r.is_ok()).count() - todo.len();
    eprintln!(
        "{} of {} requests in shard {}: {} to write, {already} already written, {} unusable",
        mine.len(),
        lines.len(),
        args.shard,
        todo.len(),
        results.iter().filter(|r| r.is_err()).count(),
    );

    let started = Instant::now();
    let mut written = 0;
    if !todo.is_empty() {
        let jobs = (args.jobs as usize).min(todo.len());
        let mut studio = Studio::open(args.studio)?;
        if args.batch_windows > 0 {
            studio.batch_across_songs(
                Duration::from_millis(args.batch_linger_ms),
                args.batch_windows as usize,
            );
        }
        let default_think = studio.think();
        let with_critic = todo
            .iter()
            .any(|(_, r)| r.think.unwrap_or(default_think).settings().use_critic);
        let mut judges = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            judges.push(studio.judges(with_critic)?);
        }
        let bar = progress_bar(todo.len());
        let outcomes = make_all(&studio, judges, &todo, out, |slot, outcome, wall| {
            let line = &mine[slot];
            let folder = out.join(line.id.as_deref().unwrap_or_default());
            match &outcome {
                Ok(()) => {
                    bar.inc(1);
                    if bar.is_hidden() {
                        eprintln!(
                            "[{}/{}] wrote {} ({:.1} s)",
                            bar.position(),
                            todo.len(),
                            folder.display(),
                            wall.as_secs_f64()
                        );
                    }
                }
                Err(reason) => {
                    bar.inc(1);
                    bar.suspend(|| {
                        eprintln!("line {}{}: {reason}", line.line, id_note(line));
                    });
                }
            }
            let minutes = started.elapsed().as_secs_f64() / 60.0;
            bar.set_message(format!(
                "{:.1} songs/min",
                bar.position() as f64 / minutes.max(1e-9)
            ));
            let outcome_name = if outcome.is_ok() { "written" } else { "error" };
            timing.record(line, outcome_name, wall)
        })?;
        bar.finish_and_clear();
        if let Some(batcher) = &studio.models.batcher {
            let counts = batcher.counts();
            eprintln!(
                "DiT: {} passes over {} windows ({:.1} windows per pass)",
                counts.passes,
                counts.windows,
                counts.windows as f64 / counts.passes.max(1) as f64
            );
        }
        for (slot, outcome) in outcomes {
            written += usize::from(outcome.is_ok());
            results[slot] = outcome;
        }
    }

    let summary = summarise(out, &mine, &results);
    write_summary(&summary_path, &summary)?;
    let failed: Vec<&SummaryLine> = summary
        .iter()
        .filter(|s| s.status == Status::Error)
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {written} songs in {seconds:.1} s{}; {already} were already there; {} failed; \
         summary in {}",
        if written > 0 && seconds > 0.0 {
            format!(" ({:.1} songs/min)", written as f64 * 60.0 / seconds)
        } else {
            String::new()
        },
        failed.len(),
        summary_path.display()
    );
    if !failed.is_empty() {
        let mut numbers: Vec<String> = failed.iter().take(10).map(|s| s.line.to_string()).collect();
        if failed.len() > 10 {
            numbers.push("...".into());
        }
        bail!(
            "{} of {} requests failed (line{} {}); each reason is in {}. Fix them and run the \
             same command again: finished songs are kept",
            failed.len(),
            mine.len(),
            if failed.len() == 1 { "" } else { "s" },
            numbers.join(", "),
            summary_path.display()
        );
    }
    Ok(())
}

/// Makes every request of `todo` on `judges.len()` threads sharing `studio`; calls `report`
/// on this thread as each item ends (in the order they end) and returns every outcome with its
/// slot.
fn make_all(
    studio: &Studio,
    judges: Vec<Judges>,
    todo: &[(usize, BatchRequest)],
    out: &Path,
    mut report: impl FnMut(usize, Result<(), String>, Duration) -> Result<()>,
) -> Result<Vec<(usize, Result<(), String>)>> {
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for mut judges in judges {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || {
                let _registered = studio.models.batcher.as_ref().map(|b| b.worker());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((slot, request)) = todo.get(i) else {
                        break;
                    };
                    let started = Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        make_one(studio, &mut judges, request, out)
                    }))
                    .unwrap_or_else(|panic| {
                        let what = crate::panic_message(&*panic);
                        Err(format!("refrain failed inside ({what}); please report it"))
                    });
                    if sender.send((*slot, outcome, started.elapsed())).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut outcomes = Vec::with_capacity(todo.len());
        for (slot, outcome, wall) in receiver {
            report(slot, outcome.clone(), wall)?;
            outcomes.push((slot, outcome));
        }
        Ok(outcomes)
    })
}

/// Writes one request into DIR/<id>/ (staged, then renamed into place).
fn make_one(
    studio: &Studio,
    judges: &mut Judges,
    request: &BatchRequest,
    out: &Path,
) -> Result<(), String> {
    let think = request.think.unwrap_or_else(|| studio.think());
    let mut make = || -> Result<()> {
        let settings = studio.think_settings(think, judges)?;
        let generation = studio.make(&request.request, judges, settings)?;
        // Only a folder without a manifest can be in the way: not a finished item.
        generation.write_to(&out.join(&request.id), true)?;
        Ok(())
    };
    make().map_err(|e| match e.downcast::<refrain_engine::Error>() {
        Ok(error) => words::message(error),
        Err(e) => format!("{e:#}"),
    })
}

/// Whether DIR/<id>/ is a finished item of this request. A finished folder made from another
/// request is an error rather than silently kept or replaced.
fn finished(out: &Path, request: &BatchRequest) -> Result<bool, String> {
    let manifest_path = out.join(&request.id).join("manifest.json");
    if !manifest_path.is_file() {
        return Ok(false);
    }
    let manifest = read_json(&manifest_path)?;
    let wanted = serde_json::to_value(&request.request).map_err(|e| e.to_string())?;
    if manifest.get("request") != Some(&wanted) {
        return Err(format!(
            "{} holds a song made from another request; remove that folder to write this one, \
             or give the request another id",
            out.join(&request.id).display()
        ));
    }
    Ok(true)
}

/// Removes what stopped runs left of this shard's items: the staging folders
/// `.<id>.partial-<pid>` beside DIR/<id>. Other shards' leftovers are theirs to clear.
fn clear_unfinished(out: &Path, mine: &[RequestLine]) -> Result<()> {
    let ids: std::collections::HashSet<&str> = mine
        .iter()
        .filter_map(|l| l.parsed.as_ref().ok().map(|r| r.id.as_str()))
        .collect();
    let entries = fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((id, pid)) = name
            .strip_prefix('.')
            .and_then(|rest| rest.rsplit_once(".partial-"))
        else {
            continue;
        };
        if ids.contains(id) && pid.chars().all(|c| c.is_ascii_digit()) {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing the unfinished {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The summary of every request of the shard, in file order, from the folders on disk.
fn summarise(out: &Path, mine: &[RequestLine], results: &[Result<(), String>]) -> Vec<SummaryLine> {
    mine.iter()
        .zip(results)
        .map(|(line, result)| {
            let from_folder = result.clone().and_then(|()| {
                summary_of_folder(&out.join(line.id.as_deref().unwrap_or_default()))
            });
            match from_folder {
                Ok(mut summary) => {
                    summary.line = line.line;
                    summary.id = line.id.clone();
                    summary
                }
                Err(reason) => SummaryLine {
                    line: line.line,
                    id: line.id.clone(),
                    status: Status::Error,
                    seconds: None,
                    loudness_lufs: None,
                    true_peak_dbtp: None,
                    critic_score: None,
                    error: Some(reason),
                },
            }
        })
        .collect()
}

/// A finished item's figures: length and loudness from its manifest, and the mean critic
/// score of the segments it kept from its trace (the last accepted candidate of each segment;
/// an earlier one may have been taken back).
pub fn summary_of_folder(folder: &Path) -> Result<SummaryLine, String> {
    let manifest = read_json(&folder.join("manifest.json"))?;
    let number = |field: &str| manifest.get(field).and_then(|v| v.as_f64());
    let trace_path = folder.join("trace.jsonl");
    let trace = fs::read_to_string(&trace_path)
        .map_err(|e| format!("reading {}: {e}", trace_path.display()))?;
    let mut kept: BTreeMap<usize, f32> = BTreeMap::new();
    for text in trace.lines().filter(|l| !l.trim().is_empty()) {
        let event: TraceEvent = serde_json::from_str(text)
            .map_err(|e| format!("reading {}: {e}", trace_path.display()))?;
        if event.decision == Decision::Accept
            && let Some(overall) = event.overall
        {
            kept.insert(event.segment, overall);
        }
    }
    let critic_score = (!kept.is_empty()).then(|| {
        let mean = kept.values().map(|&s| f64::from(s)).sum::<f64>() / kept.len() as f64;
        (mean * 10_000.0).round() / 10_000.0
    });
    Ok(SummaryLine {
        line: 0,
        id: None,
        status: Status::Ok,
        seconds: number("seconds"),
        loudness_lufs: number("loudness_lufs"),
        true_peak_dbtp: number("true_peak_dbtp"),
        critic_score,
        error: None,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Writes the summary under a temporary name and renames it into place.
fn write_summary(path: &Path, summary: &[SummaryLine]) -> Result<()> {
    let mut text = String::new();
    for line in summary {
        text.push_str(&serde_json::to_string(line)?);
        text.push('\n');
    }
    let partial = path.with_extension("jsonl.partial");
    fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn id_note(line: &RequestLine) -> String {
    line.id
        .as_ref()
        .map(|id| format!(" (id {id:?})"))
        .unwrap_or_default()
}

fn progress_bar(items: usize) -> ProgressBar {
    let bar = ProgressBar::new(items as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} songs ({per_sec}, eta {eta}, elapsed {elapsed}) {msg}",
        )
        .expect("static template"),
    );
    bar
}

/// timing.jsonl: one line per request per run (written, skipped or error, and the wall time),
/// appended as items end, so it also tells how far a stopped run got.
struct Timing {
    file: fs::File,
    path: PathBuf,
    run: u64,
}

impl Timing {
    fn open(path: &Path) -> Result<Timing> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Ok(Timing {
            file,
            path: path.to_path_buf(),
            run,
        })
    }

    fn record(&mut self, line: &RequestLine, outcome: &str, wall: Duration) -> Result<()> {
        let record = serde_json::json!({
            "run": self.run,
            "line": line.line,
            "id": line.id,
            "outcome": outcome,
            "wall_ms": wall.as_millis() as u64,
        });
        writeln!(self.file, "{record}").with_context(|| format!("writing {}", self.path.display()))
    }
}
