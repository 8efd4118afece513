//! `refrain inspect`: reads an output folder of `refrain generate` and tells what the
//! reasoning loop did, segment by segment and attempt by attempt, from trace.jsonl; then draws
//! song.mid as a piano roll with the taken-back segments marked (see [`crate::pianoroll`]).

use crate::pianoroll::{self, RollMarks};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use refrain_engine::midi::{self, MAX_IMPORT_BARS};
use refrain_engine::music::{Section, Song, Stem};
use refrain_engine::reasoning::{Decision, TraceEvent};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The trace file `refrain generate` writes.
pub const TRACE_FILE: &str = "trace.jsonl";
/// The MIDI file `refrain generate` writes.
pub const SONG_FILE: &str = "song.mid";
/// The plan `refrain generate` writes; inspect reads its form (bars and sections).
pub const PLAN_FILE: &str = "plan.json";
/// Where the piano roll goes unless `--png` says otherwise.
pub const PIANO_ROLL_FILE: &str = "pianoroll.png";

/// Every decision, in the order the header counts them.
const DECISIONS: [Decision; 6] = [
    Decision::Accept,
    Decision::Reject,
    Decision::Prune,
    Decision::Resample,
    Decision::Retract,
    Decision::Backtrack,
];

#[derive(Args)]
pub struct InspectArgs {
    /// Output folder of `refrain generate`: trace.jsonl is needed; song.mid for the picture;
    /// plan.json (optional) for the section lines.
    dir: PathBuf,
    /// Where to write the piano roll [default: DIR/pianoroll.png].
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Print every line of trace.jsonl as it is, instead of the account grouped by segment,
    /// attempt and step.
    #[arg(long)]
    full: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let dir = &args.dir;
    if !dir.is_dir() {
        if dir.exists() {
            bail!(
                "{} is a file, not a folder; give the output folder of `refrain generate`",
                dir.display()
            );
        }
        bail!(
            "there is no folder {}; give the output folder of `refrain generate`",
            dir.display()
        );
    }
    let trace_path = dir.join(TRACE_FILE);
    let text = match std::fs::read_to_string(&trace_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} has no {TRACE_FILE}, so there is nothing to inspect; is it an output folder of \
             `refrain generate`?",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", trace_path.display())),
    };
    let entries = read_trace(&text).map_err(|bad| anyhow!("{}: {bad}", trace_path.display()))?;
    let events: Vec<TraceEvent> = entries.iter().map(|e| e.event.clone()).collect();
    let song = read_song(dir, &events);

    let known_song = song.as_ref().ok().and_then(Option::as_ref);
    let mut report = format!("{}\n", header(known_song, &events));
    if args.full {
        for entry in &entries {
            report.push_str(&entry.text);
            report.push('\n');
        }
    } else {
        for account in account_for(&events) {
            report.push_str(&account.to_string());
        }
    }
    // A reader that stops early (`| head`) is not an error.
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), report.as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("printing the trace");
    }

    let Some(song) = song? else {
        eprintln!(
            "note: {} has no {SONG_FILE}, so no piano roll was drawn",
            dir.display()
        );
        return Ok(());
    };
    let png = args.png.unwrap_or_else(|| dir.join(PIANO_ROLL_FILE));
    let picture = pianoroll::draw(&song, &RollMarks::from_trace(&events));
    pianoroll::write_png(&picture, &png)
        .with_context(|| format!("writing the piano roll to {}", png.display()))?;
    eprintln!(
        "drew {} ({} x {} pixels)",
        png.display(),
        picture.width,
        picture.height
    );
    Ok(())
}

/// One line of trace.jsonl: its text and the event it holds.
pub struct TraceEntry {
    pub text: String,
    pub event: TraceEvent,
}

/// A line of trace.jsonl that does not hold a trace event.
#[derive(Debug)]
pub struct BadTraceLine {
    pub line: usize,
    pub problem: serde_json::Error,
}

impl fmt::Display for BadTraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde_json ends its message with "at line 1 column N", which would read as a line of
        // the file; the column is told on its own instead.
        let problem = self.problem.to_string();
        let problem = problem
            .rfind(" at line ")
            .map_or(problem.as_str(), |end| &problem[..end]);
        write!(
            f,
            "line {} is not a trace event (column {}: {problem})",
            self.line,
            self.problem.column()
        )
    }
}

impl std::error::Error for BadTraceLine {}

/// Reads trace.jsonl, one event per line; blank lines are skipped.
pub fn read_trace(text: &str) -> Result<Vec<TraceEntry>, BadTraceLine> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let event = serde_json::from_str(line).map_err(|problem| BadTraceLine {
                line: i + 1,
                problem,
            })?;
            Ok(TraceEntry {
                text: line.to_string(),
                event,
            })
        })
        .collect()
}

/// The form plan.json records; the rest of the plan is not needed here.
#[derive(Deserialize)]
struct PlannedForm {
    bars: u32,
    sections: Vec<Section>,
}

/// song.mid with the plan's sections and the full length the plan and the trace know of
/// (MIDI keeps neither the sections nor silent closing bars). `Ok(None)` when song.mid is
/// missing.
fn read_song(dir: &Path, events: &[TraceEvent]) -> Result<Option<Song>> {
    let path = dir.join(SONG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut song = midi::read_midi(&bytes).with_context(|| {
        format!(
            "cannot draw the piano roll: {} is not a MIDI file refrain can read",
            path.display()
        )
    })?;
    if let Some(form) = read_form(dir) {
        song.bars = song.bars.max(form.bars);
        song.sections = form.sections;
    }
    let traced_bars = events.iter().map(|e| e.bars[1]).max().unwrap_or(0);
    song.bars = song.bars.max(traced_bars).min(MAX_IMPORT_BARS);
    Ok(Some(song))
}

/// plan.json's form, or `None` (with a note when the file is there but unreadable).
fn read_form(dir: &Path) -> Option<PlannedForm> {
    let path = dir.join(PLAN_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(form) => Some(form),
        Err(e) => {
            eprintln!(
                "note: could not read the sections from {} ({e}); the picture shows none",
                path.display()
            );
            None
        }
    }
}

/// The lines above the account: the song's length and stems, and how many of each decision.
pub fn header(song: Option<&Song>, events: &[TraceEvent]) -> String {
    let mut text = match song {
        Some(song) => {
            let stems: Vec<String> = Stem::ALL
                .into_iter()
                .filter_map(|stem| song.stem(stem))
                .map(|track| format!("{} ({} notes)", track.stem, track.notes.len()))
                .collect();
            format!(
                "song: {} bars of {} at {} bpm; stems: {}\n",
                song.bars,
                song.meter,
                song.tempo_bpm,
                if stems.is_empty() {
                    "none".to_string()
                } else {
                    stems.join(", ")
                }
            )
        }
        None => format!("song: no {SONG_FILE}\n"),
    };
    let segments: BTreeSet<usize> = events.iter().map(|e| e.segment).collect();
    let counts: Vec<String> = DECISIONS
        .into_iter()
        .map(|d| {
            let n = events.iter().filter(|e| e.decision == d).count();
            format!("{n} {}", d.name())
        })
        .collect();
    text += &format!(
        "trace: {} events over {} segments: {}\n",
        events.len(),
        segments.len(),
        counts.join(", ")
    );
    let taken_back: BTreeSet<usize> = events
        .iter()
        .filter(|e| matches!(e.decision, Decision::Retract | Decision::Backtrack))
        .map(|e| e.segment)
        .collect();
    if !taken_back.is_empty() {
        let list: Vec<String> = taken_back.iter().map(usize::to_string).collect();
        text += &format!("retracted or backtracked at segments {}\n", list.join(", "));
    }
    text
}

/// What happened to one segment, from when the loop came to it until it moved on.
pub struct SegmentAccount<'a> {
    /// The block's first event: segment, section and bars.
    pub first: &'a TraceEvent,
    /// The loop had written this segment before and came back to it after a backtrack.
    pub again: bool,
    pub attempts: Vec<AttemptAccount<'a>>,
}

/// One attempt at a segment.
pub struct AttemptAccount<'a> {
    pub attempt: u32,
    pub moments: Vec<Moment<'a>>,
}

/// One line of an attempt's account.
pub enum Moment<'a> {
    /// Decisions taken together at one checkpoint step, or on the finished candidates when
    /// `step` is `None`.
    Judged {
        step: Option<usize>,
        choices: Vec<Choice<'a>>,
    },
    /// A retract or a backtrack, told with its reason in full.
    TakenBack(&'a TraceEvent),
}

/// Events of one decision taken together.
pub struct Choice<'a> {
    pub decision: Decision,
    pub events: Vec<&'a TraceEvent>,
}

/// Groups the trace, in its order, by segment, attempt and step.
pub fn account_for(events: &[TraceEvent]) -> Vec<SegmentAccount<'_>> {
    let mut accounts: Vec<SegmentAccount> = Vec::new();
    let mut seen = BTreeSet::new();
    for event in events {
        if accounts
            .last()
            .is_none_or(|a| a.first.segment != event.segment)
        {
            accounts.push(SegmentAccount {
                first: event,
                again: !seen.insert(event.segment),
                attempts: Vec::new(),
            });
        }
        let account = accounts.last_mut().expect("pushed above");
        if account
            .attempts
            .last()
            .is_none_or(|a| a.attempt != event.attempt)
        {
            account.attempts.push(AttemptAccount {
                attempt: event.attempt,
                moments: Vec::new(),
            });
        }
        let moments = &mut account.attempts.last_mut().expect("pushed above").moments;
        add_moment(moments, event);
    }
    accounts
}

fn add_moment<'a>(moments: &mut Vec<Moment<'a>>, event: &'a TraceEvent) {
    if matches!(event.decision, Decision::Retract | Decision::Backtrack) {
        moments.push(Moment::TakenBack(event));
        return;
    }
    let choices = match moments.last_mut() {
        Some(Moment::Judged { step, choices }) if *step == event.step => choices,
        _ => {
            moments.push(Moment::Judged {
                step: event.step,
                choices: Vec::new(),
            });
            match moments.last_mut() {
                Some(Moment::Judged { choices, .. }) => choices,
                _ => unreachable!("a judged moment was pushed above"),
            }
        }
    };
    match choices.iter_mut().find(|c| c.decision == event.decision) {
        Some(choice) => choice.events.push(event),
        None => choices.push(Choice {
            decision: event.decision,
            events: vec![event],
        }),
    }
}

impl fmt::Display for SegmentAccount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [start, end] = self.first.bars;
        write!(f, "segment {}", self.first.segment)?;
        if self.again {
            f.write_str(" again")?;
        }
        if self.first.section.is_empty() {
            writeln!(f, " (bars {start}-{end})")?;
        } else {
            writeln!(f, " ({}, bars {start}-{end})", self.first.section)?;
        }
        for attempt in &self.attempts {
            match attempt.moments.as_slice() {
                [only] => writeln!(f, "  attempt {}: {only}", attempt.attempt)?,
                moments => {
                    writeln!(f, "  attempt {}:", attempt.attempt)?;
                    for moment in moments {
                        writeln!(f, "    {moment}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Moment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Judged { step, choices } => {
                if let Some(step) = step {
                    write!(f, "step {step}: ")?;
                }
                for (i, choice) in choices.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{choice}")?;
                }
                Ok(())
            }
            Moment::TakenBack(event) => {
                f.write_str(verb(event.decision))?;
                if let Some(overall) = event.overall {
                    write!(f, " (overall {overall:.2})")?;
                }
                write!(f, ": {}", event.reason)
            }
        }
    }
}

impl fmt::Display for Choice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(verb(self.decision))?;
        let particles: Vec<String> = self
            .events
            .iter()
            .map(|e| e.particle.map_or("?".to_string(), |p| p.to_string()))
            .collect();
        let any_particle = self.events.iter().any(|e| e.particle.is_some());
        match (any_particle, self.events.len()) {
            (false, 1) => {}
            (false, n) => write!(f, " {n} candidates")?,
            (true, 1) => write!(f, " particle {}", particles[0])?,
            (true, _) => write!(f, " particles {}", particles.join(", "))?,
        }
        let details = self.details();
        if !details.is_empty() {
            write!(f, " ({})", details.join("; "))?;
        }
        // Reasons are told once when every event gives the same one; --full shows them all.
        let reason = &self.events[0].reason;
        if !reason.is_empty() && self.events.iter().all(|e| &e.reason == reason) {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

impl Choice<'_> {
    /// "overall 0.21, 0.18" and "weakest rhythm, harmony", for the events that have them.
    fn details(&self) -> Vec<String> {
        let mut details = Vec::new();
        if self.events.iter().any(|e| e.overall.is_some()) {
            let overall: Vec<String> = self
                .events
                .iter()
                .map(|e| e.overall.map_or("-".to_string(), |o| format!("{o:.2}")))
                .collect();
            details.push(format!("overall {}", overall.join(", ")));
        }
        let weakest: Vec<&str> = self
            .events
            .iter()
            .map(|e| weakest_aspect(e).unwrap_or("-"))
            .collect();
        if weakest.iter().any(|&w| w != "-") {
            let shown = if weakest.iter().all(|&w| w == weakest[0]) {
                weakest[0].to_string()
            } else {
                weakest.join(", ")
            };
            details.push(format!("weakest {shown}"));
        }
        details
    }
}

/// The aspect the critic liked least in this event.
fn weakest_aspect(event: &TraceEvent) -> Option<&str> {
    event
        .aspects
        .iter()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(name, _)| name.as_str())
}

fn verb(decision: Decision) -> &'static str {
    match decision {
        Decision::Accept => "accepted",
        Decision::Reject => "rejected",
        Decision::Prune => "pruned",
        Decision::Resample => "kept",
        Decision::Retract => "retracted",
        Decision::Backtrack => "backtracked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(segment: usize, attempt: u32, step: Option<usize>, decision: Decision) -> TraceEvent {
        TraceEvent {
            segment,
            section: "verse".into(),
            bars: [4 * segment as u32, 4 * segment as u32 + 4],
            attempt,
            step,
            particle: None,
            decision,
            overall: None,
            aspects: Default::default(),
            reason: String::new(),
        }
    }

    fn judged(
        segment: usize,
        attempt: u32,
        step: Option<usize>,
        particle: usize,
        decision: Decision,
        overall: f32,
        weakest: &str,
    ) -> TraceEvent {
        TraceEvent {
            particle: Some(particle),
            overall: Some(overall),
            aspects: [(weakest.to_string(), 0.1), ("harmony".to_string(), 0.9)].into(),
            ..event(segment, attempt, step, decision)
        }
    }

    fn rendered(events: &[TraceEvent]) -> String {
        account_for(events).iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_older_trace_lines_of_generate_read_as_events() {
        let text = "{\"segment\":0,\"section\":\"intro\",\"bars\":[0,4],\"attempt\":0,\
                    \"decision\":\"accept\",\"reason\":\"no critic yet, so the first sample is kept\"}\n\
                    \n\
                    {\"segment\":1,\"section\":\"verse\",\"bars\":[4,8],\"attempt\":0,\
                    \"decision\":\"accept\",\"reason\":\"kept\"}\n";
        let entries = read_trace(text).unwrap();
        assert_eq!(entries.len(), 2, "the blank line is skipped");
        let first = &entries[0].event;
        assert_eq!(first.decision, Decision::Accept);
        assert_eq!(
            (first.step, first.particle, first.overall),
            (None, None, None)
        );
        assert!(first.aspects.is_empty());
        assert_eq!(
            rendered(std::slice::from_ref(first)),
            "segment 0 (intro, bars 0-4)\n  attempt 0: accepted: no critic yet, so the first \
             sample is kept\n"
        );
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let good = serde_json::to_string(&event(0, 0, None, Decision::Accept)).unwrap();
        let text = format!("{good}\n{good}\n{{\"segment\": 1, \"decision\": \"maybe\"}}\n");
        let bad = read_trace(&text).err().expect("line 3 is refused");
        assert_eq!(bad.line, 3);
        let told = bad.to_string();
        assert!(
            told.starts_with("line 3 is not a trace event (column "),
            "{told}"
        );
        assert!(told.contains(": unknown variant `maybe`"), "{told}");
        assert!(!told.contains("at line"), "{told}");
    }

    #[test]
    fn checkpoint_decisions_group_per_segment_attempt_and_step() {
        let events = [
            judged(3, 0, Some(3), 1, Decision::Prune, 0.21, "rhythm"),
            judged(3, 0, Some(3), 0, Decision::Resample, 0.83, "melody"),
            judged(3, 0, Some(3), 3, Decision::Prune, 0.18, "rhythm"),
            judged(3, 0, Some(3), 2, Decision::Resample, 0.77, "melody"),
            judged(3, 0, Some(6), 2, Decision::Resample, 0.80, "melody"),
            judged(3, 0, None, 2, Decision::Accept, 0.83, "melody"),
        ];
        let accounts = account_for(&events);
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].attempts.len(), 1);
        let moments = &accounts[0].attempts[0].moments;
        assert_eq!(moments.len(), 3);
        let Moment::Judged { step, choices } = &moments[0] else {
            panic!("a checkpoint first");
        };
        assert_eq!(*step, Some(3));
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[0].events.len(), 2);
        assert_eq!(
            rendered(&events),
            "segment 3 (verse, bars 12-16)\n  attempt 0:\n    step 3: pruned particles 1, 3 \
             (overall 0.21, 0.18; weakest rhythm); kept particles 0, 2 (overall 0.83, 0.77; \
             weakest melody)\n    step 6: kept particle 2 (overall 0.80; weakest melody)\n    \
             accepted particle 2 (overall 0.83; weakest melody)\n"
        );
    }

    #[test]
    fn retracts_and_backtracks_keep_their_reasons_and_a_revisit_is_told_apart() {
        let retract = TraceEvent {
            reason: "best overall 0.41 is below the threshold 0.50".into(),
            ..event(2, 0, None, Decision::Retract)
        };
        let backtrack = TraceEvent {
            reason: "no attempt cleared the threshold; taking back segment 1".into(),
            ..event(2, 1, None, Decision::Backtrack)
        };
        let events = [
            event(1, 0, None, Decision::Accept),
            judged(2, 0, None, 0, Decision::Reject, 0.41, "harmony"),
            retract,
            backtrack,
            event(1, 1, None, Decision::Accept),
        ];
        let text = rendered(&events);
        assert!(text.contains(
            "  attempt 0:\n    rejected particle 0 (overall 0.41; weakest harmony)\n    \
             retracted: best overall 0.41 is below the threshold 0.50\n"
        ));
        assert!(text.contains(
            "  attempt 1: backtracked: no attempt cleared the threshold; taking back segment 1\n"
        ));
        assert!(text.contains("segment 1 again (verse, bars 4-8)\n"));
    }

    #[test]
    fn differing_reasons_are_left_to_full_and_shared_ones_told_once() {
        let with_reason = |particle, reason: &str| TraceEvent {
            particle: Some(particle),
            reason: reason.into(),
            ..event(0, 0, Some(2), Decision::Prune)
        };
        let shared = [
            with_reason(0, "below the cut"),
            with_reason(1, "below the cut"),
        ];
        assert!(rendered(&shared).contains("step 2: pruned particles 0, 1: below the cut\n"));
        let differing = [with_reason(0, "a"), with_reason(1, "b")];
        assert!(rendered(&differing).contains("step 2: pruned particles 0, 1\n"));
    }

    #[test]
    fn the_header_counts_every_decision() {
        let events = [
            event(0, 0, None, Decision::Accept),
            event(1, 0, Some(1), Decision::Prune),
            event(1, 0, None, Decision::Retract),
            event(1, 1, None, Decision::Accept),
        ];
        let text = header(None, &events);
        assert!(text.contains("song: no song.mid\n"));
        assert!(text.contains(
            "trace: 4 events over 2 segments: 2 accept, 0 reject, 1 prune, 0 resample, \
             1 retract, 0 backtrack\n"
        ));
        assert!(text.contains("retracted or backtracked at segments 1\n"));
    }
}
