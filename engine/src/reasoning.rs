//! The reasoning loop: for each segment, K particles denoise from independent noises; at
//! chosen steps a critic judges every particle's predicted clean segment, weak ones are
//! pruned and strong ones branched; the best finished particle is accepted only if it clears
//! the threshold, otherwise the segment is retracted and retried, and when retries run out
//! the previous segment is retracted too. Every decision becomes a [`TraceEvent`].

use crate::Error;
use crate::critic::{ASPECTS, Candidate, Critic, Judgement};
use crate::model::sampler::{Denoising, FlowSampler, window_noise};
use crate::music::{Note, Song, Stem};
use crate::writer::{Segment, SegmentRecord, SongContext, segments};
use burn::prelude::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How hard to think: the presets of `--think`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Think {
    /// No critic: draw `candidates` finished segments and keep one at random.
    None,
    Fast,
    #[default]
    Balanced,
    Deep,
}

impl Think {
    pub const ALL: [Think; 4] = [Think::None, Think::Fast, Think::Balanced, Think::Deep];

    pub fn name(self) -> &'static str {
        match self {
            Think::None => "none",
            Think::Fast => "fast",
            Think::Balanced => "balanced",
            Think::Deep => "deep",
        }
    }

    /// The preset's settings (for 8 denoising steps; checkpoints past the last step are
    /// never reached).
    pub fn settings(self) -> ThinkSettings {
        let base = ThinkSettings {
            use_critic: true,
            particles: 1,
            checkpoints: Vec::new(),
            threshold: DEFAULT_THRESHOLD,
            retries: 0,
            backtracks: 0,
            guard_limit: DEFAULT_GUARD_LIMIT,
        };
        match self {
            Think::None => ThinkSettings {
                use_critic: false,
                ..base
            },
            Think::Fast => ThinkSettings {
                particles: 2,
                checkpoints: vec![4],
                retries: 1,
                ..base
            },
            Think::Balanced => ThinkSettings {
                particles: 4,
                checkpoints: vec![3, 6],
                retries: 2,
                backtracks: 1,
                ..base
            },
            Think::Deep => ThinkSettings {
                particles: 8,
                checkpoints: vec![2, 4, 6],
                retries: 3,
                backtracks: 2,
                ..base
            },
        }
    }
}

impl std::str::FromStr for Think {
    type Err = Error;
    fn from_str(text: &str) -> Result<Think, Error> {
        Think::ALL
            .into_iter()
            .find(|t| t.name() == text.trim().to_lowercase())
            .ok_or_else(|| {
                Error::Request(format!(
                    "unknown --think level {text:?}; use none, fast, balanced or deep"
                ))
            })
    }
}

/// How many times the particles a segment's last attempt gets, when every other attempt and
/// backtrack has failed.
pub const LAST_RESORT_WIDENING: usize = 4;
/// The most particles an attempt may denoise side by side.
pub const MAX_PARTICLES: usize = 64;

/// The overall score a finished candidate needs to be accepted.
pub const DEFAULT_THRESHOLD: f32 = 0.5;
/// A lead that copies a training melody for more consecutive intervals than this is refused
/// (docs/DATA.md: unseen folk tunes share stock phrases of up to a dozen intervals).
pub const DEFAULT_GUARD_LIMIT: usize = 24;

/// What the loop does per segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThinkSettings {
    /// Judge with the critic (off: keep a random candidate, the equal-compute baseline).
    pub use_critic: bool,
    /// Particles (K) denoised side by side from independent noises.
    pub particles: usize,
    /// Denoising steps (1-based) after which the critic judges the predicted clean segments
    /// and the weaker half is pruned, the stronger branched.
    pub checkpoints: Vec<usize>,
    /// Overall score a finished candidate needs.
    pub threshold: f32,
    /// Fresh attempts at a segment after the first fails.
    pub retries: u32,
    /// How many times a segment may take back the one before it when its own attempts fail.
    pub backtracks: u32,
    /// Longest run of consecutive lead intervals allowed to match the training corpus.
    pub guard_limit: usize,
}

impl ThinkSettings {
    pub fn check(&self) -> Result<(), Error> {
        if self.particles == 0 || self.particles > MAX_PARTICLES {
            return Err(Error::Request(format!(
                "{} candidates per segment; use 1 to 64",
                self.particles
            )));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Error::Request(format!(
                "threshold {} is not a probability between 0 and 1",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// Finds copies of training melodies (the memorisation guard's index implements it).
pub trait CopyGuard {
    /// The longest run of consecutive intervals of `lead` that copies a training melody.
    fn longest_copy(&self, lead: &[Note]) -> usize;
}

/// The reasoning loop's settings and judges for one song.
pub struct Thinking<'a> {
    pub settings: ThinkSettings,
    pub critic: Option<&'a mut dyn Critic>,
    pub guard: Option<&'a dyn CopyGuard>,
}

impl Thinking<'_> {
    /// No critic and no guard: one candidate per segment, kept.
    pub fn none() -> Thinking<'static> {
        Thinking {
            settings: Think::None.settings(),
            critic: None,
            guard: None,
        }
    }
}

/// What the loop decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// A finished candidate kept for the song.
    Accept,
    /// A finished candidate below the threshold (or a guarded copy), not kept.
    Reject,
    /// A particle dropped at a checkpoint.
    Prune,
    /// A particle kept at a checkpoint (and branched when it has more than one copy).
    Resample,
    /// A segment taken back: its attempt failed, a fresh one follows.
    Retract,
    /// The previous, already accepted segment taken back because this one could not be
    /// written after it.
    Backtrack,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Reject => "reject",
            Decision::Prune => "prune",
            Decision::Resample => "resample",
            Decision::Retract => "retract",
            Decision::Backtrack => "backtrack",
        }
    }
}

/// One line of trace.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub segment: usize,
    /// Section the segment's first written bar belongs to, e.g. "verse".
    pub section: String,
    /// Song bars the segment writes, `[start, end)`.
    pub bars: [u32; 2],
    pub attempt: u32,
    /// Denoising step (1-based) of a checkpoint; absent for decisions on finished candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub particle: Option<usize>,
    pub decision: Decision,
    /// The critic's overall probability, when it judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<f32>,
    /// The critic's probability per aspect (`critic::ASPECTS`), when it judged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aspects: BTreeMap<String, f32>,
    pub reason: String,
}

/// A finished candidate of one attempt.
struct Finished {
    particle: usize,
    /// The window's normalised latents.
    values: Vec<f32>,
    judgement: Option<Judgement>,
    /// Consecutive lead intervals copied from the corpus, when over the limit.
    copied: Option<usize>,
}

/// How one attempt at a segment went.
struct Attempt {
    finished: Vec<Finished>,
    /// Index into `finished` of the one to keep, if any clears the bar.
    accepted: Option<usize>,
    evaluations: usize,
}

fn aspects_map(judgement: &Judgement) -> BTreeMap<String, f32> {
    ASPECTS
        .iter()
        .zip(judgement.aspects)
        .map(|(name, value)| (name.to_string(), round3(value)))
        .collect()
}

fn round3(value: f32) -> f32 {
    (value * 1000.0).round() / 1000.0
}

/// A probability for a reason in words: two decimals, or two significant digits below 0.1
/// (the shipped threshold is 0.0014, which two decimals would print as 0.00).
fn score(p: f32) -> String {
    if p.is_nan() || p <= 0.0 || p >= 0.1 {
        format!("{p:.2}")
    } else {
        let decimals = (-p.log10()).ceil() as usize + 1;
        format!("{p:.decimals$}")
    }
}

/// "weakest rhythm 0.12: drums 5 of 9 onsets off the grid"
fn why(judgement: &Judgement) -> String {
    let (aspect, value) = judgement.weakest();
    match judgement.reasons.first() {
        Some(reason) => format!("weakest {aspect} {}: {reason}", score(value)),
        None => format!("weakest {aspect} {}", score(value)),
    }
}

/// What the loop leaves: the song's normalised latents (bar-major, all stems), a record per
/// segment and the trace.
pub struct SegmentsWritten {
    pub tokens: Vec<f32>,
    pub records: Vec<SegmentRecord>,
    pub trace: Vec<TraceEvent>,
}

/// Writes every segment of the song with the reasoning loop.
pub fn write_segments<B: Backend>(
    context: &SongContext<'_, B>,
    thinking: &mut Thinking<'_>,
) -> Result<SegmentsWritten, Error> {
    thinking.settings.check()?;
    if thinking.settings.use_critic && thinking.critic.is_none() {
        return Err(Error::Model(
            "thinking needs a critic; load one or use --think none".into(),
        ));
    }
    let plan = context.plan;
    let all = segments(plan.bars, plan.looped, context.settings);
    let mut tokens = vec![0f32; plan.bars as usize * context.per_bar()];
    let mut trace = Vec::new();
    let mut records: Vec<Option<SegmentRecord>> = vec![None; all.len()];
    // Next attempt number per segment: attempts never reuse noise, across backtracks too.
    let mut next_attempt = vec![0u32; all.len()];
    let mut backtracks_taken = vec![0u32; all.len()];
    let mut spent = vec![0usize; all.len()];
    let mut index = 0;
    while index < all.len() {
        let segment = &all[index];
        let mut fallback: Option<(u32, Finished)> = None;
        let mut done = false;
        // The attempts of this round: 1 + retries at the set width; when no backtrack is
        // left to try after them, one wider search before settling for the best seen.
        let narrow = thinking.settings.particles;
        let last_round = index == 0 || backtracks_taken[index] >= thinking.settings.backtracks;
        let wide = (narrow * LAST_RESORT_WIDENING).min(MAX_PARTICLES);
        let mut widths = vec![narrow; thinking.settings.retries as usize + 1];
        if last_round && thinking.settings.use_critic && wide > narrow {
            widths.push(wide);
        }
        for (round, &width) in widths.iter().enumerate() {
            let attempt = next_attempt[index];
            next_attempt[index] += 1;
            thinking.settings.particles = width;
            let outcome = attempt_segment(context, thinking, segment, attempt, &tokens, &mut trace);
            thinking.settings.particles = narrow;
            let outcome = outcome?;
            spent[index] += outcome.evaluations;
            if let Some(kept) = outcome.accepted {
                let chosen = &outcome.finished[kept];
                context.keep(segment, &chosen.values, &mut tokens);
                records[index] = Some(SegmentRecord {
                    segment: segment.clone(),
                    attempt,
                    evaluations: spent[index],
                    score: chosen.judgement.as_ref().map(|j| j.overall),
                });
                done = true;
                break;
            }
            let best = outcome
                .finished
                .into_iter()
                .filter(|f| f.copied.is_none())
                .max_by(|a, b| overall(a).total_cmp(&overall(b)));
            let next = match widths.get(round + 1) {
                Some(&next) if next > width => {
                    format!("one last attempt with {next} particles instead of {width}")
                }
                _ => "trying fresh noise".into(),
            };
            trace.push(event(
                context,
                segment,
                attempt,
                None,
                None,
                Decision::Retract,
                None,
                match &best {
                    Some(b) => format!(
                        "no candidate reached {}; the best scored {} ({}); {next}",
                        score(thinking.settings.threshold),
                        score(overall(b)),
                        b.judgement.as_ref().map(why).unwrap_or_default()
                    ),
                    None => format!("every candidate copied a training melody; {next}"),
                },
            ));
            if let Some(best) = best
                && fallback
                    .as_ref()
                    .is_none_or(|(_, f)| overall(&best) > overall(f))
            {
                fallback = Some((attempt, best));
            }
        }
        if done {
            index += 1;
            continue;
        }
        if index > 0 && backtracks_taken[index] < thinking.settings.backtracks {
            backtracks_taken[index] += 1;
            let previous = &all[index - 1];
            trace.push(event(
                context,
                previous,
                next_attempt[index - 1],
                None,
                None,
                Decision::Backtrack,
                None,
                format!(
                    "segment {} (bars {}-{}) failed {} attempts after this one; taking this \
                     segment back to write both again",
                    segment.index,
                    segment.writes.start + 1,
                    segment.writes.end,
                    thinking.settings.retries + 1
                ),
            ));
            index -= 1;
            continue;
        }
        // Out of retries and backtracks: the best candidate seen is kept, and says so.
        let Some((attempt, best)) = fallback else {
            return Err(Error::Model(format!(
                "every candidate for bars {}-{} copied a training melody",
                segment.writes.start + 1,
                segment.writes.end
            )));
        };
        trace.push(event(
            context,
            segment,
            attempt,
            None,
            Some(best.particle),
            Decision::Accept,
            best.judgement.as_ref(),
            format!(
                "below the threshold {} after every retry and backtrack{}; keeping the best \
                 candidate seen ({})",
                score(thinking.settings.threshold),
                if widths.len() > thinking.settings.retries as usize + 1 {
                    format!(" and a last attempt with {wide} particles")
                } else {
                    String::new()
                },
                score(overall(&best))
            ),
        ));
        context.keep(segment, &best.values, &mut tokens);
        records[index] = Some(SegmentRecord {
            segment: segment.clone(),
            attempt,
            evaluations: spent[index],
            score: best.judgement.as_ref().map(|j| j.overall),
        });
        index += 1;
    }
    Ok(SegmentsWritten {
        tokens,
        records: records.into_iter().flatten().collect(),
        trace,
    })
}

fn overall(finished: &Finished) -> f32 {
    finished.judgement.as_ref().map_or(0.0, |j| j.overall)
}

#[allow(clippy::too_many_arguments)]
fn event<B: Backend>(
    context: &SongContext<'_, B>,
    segment: &Segment,
    attempt: u32,
    step: Option<usize>,
    particle: Option<usize>,
    decision: Decision,
    judgement: Option<&Judgement>,
    reason: String,
) -> TraceEvent {
    let first = segment.writes.start;
    TraceEvent {
        segment: segment.index,
        section: context
            .sheet
            .section_at(first)
            .map(|s| s.kind.name().to_string())
            .unwrap_or_default(),
        bars: [segment.writes.start, segment.writes.end],
        attempt,
        step,
        particle,
        decision,
        overall: judgement.map(|j| round3(j.overall)),
        aspects: judgement.map(aspects_map).unwrap_or_default(),
        reason,
    }
}

/// Mixes (seed, segment, attempt) with a purpose into a seed for the loop's own choices.
fn choice_rng(seed: u64, segment: usize, attempt: u32, purpose: u64) -> ChaCha8Rng {
    let noise = window_noise(seed, segment as u64, u64::from(attempt), purpose, 2);
    ChaCha8Rng::seed_from_u64(u64::from(noise[0].to_bits()) << 32 | u64::from(noise[1].to_bits()))
}

/// Particle numbers at and above this are branch noises, not first draws.
const BRANCH_PARTICLES: u64 = 1 << 20;

/// One attempt at a segment: K particles denoised, judged at the checkpoints (pruned and
/// branched), judged and guarded when finished.
fn attempt_segment<B: Backend>(
    context: &SongContext<'_, B>,
    thinking: &mut Thinking<'_>,
    segment: &Segment,
    attempt: u32,
    tokens: &[f32],
    trace: &mut Vec<TraceEvent>,
) -> Result<Attempt, Error> {
    let settings = thinking.settings.clone();
    let models = context.models;
    let seed = context.plan.seed;
    let k = settings.particles;
    let window = context.window(segment, tokens);
    let size = window.tokens() * models.dit_config.latent_dim;
    let noise: Vec<f32> = (0..k)
        .flat_map(|p| {
            window_noise(
                seed,
                segment.index as u64,
                u64::from(attempt),
                p as u64,
                size,
            )
        })
        .collect();
    let windows = vec![window; k];
    let mut denoising = Denoising::start(
        FlowSampler::new(context.settings.sampler),
        models.denoiser(),
        &models.dit_config,
        &windows,
        &noise,
        &models.device,
    )?;
    // Trace names of the particles now in the batch: first draws 0..k, branches after.
    let mut names: Vec<usize> = (0..k).collect();
    let mut next_name = k;
    let judging = settings.use_critic && k > 1;
    while !denoising.finished() {
        denoising.advance();
        let step = denoising.steps_taken();
        if !judging || denoising.finished() || !settings.checkpoints.contains(&step) {
            continue;
        }
        let critic = thinking.critic.as_deref_mut().expect("checked above");
        let songs = context.decode_windows(&segment.window, &denoising.predicted_clean()?)?;
        let judgements = critic.judge(&candidates(context, segment, songs))?;
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| judgements[b].overall.total_cmp(&judgements[a].overall));
        let survivors = k.div_ceil(2);
        let kept = &order[..survivors];
        // Fill the K slots: every survivor once, the rest in proportion to their scores.
        let mut parents: Vec<usize> = kept.to_vec();
        let mut rng = choice_rng(seed, segment.index, attempt, step as u64);
        let total: f32 = kept.iter().map(|&p| judgements[p].overall.max(1e-3)).sum();
        while parents.len() < k {
            let mut pick = rng.random::<f32>() * total;
            let mut chosen = kept[0];
            for &p in kept {
                pick -= judgements[p].overall.max(1e-3);
                if pick <= 0.0 {
                    chosen = p;
                    break;
                }
            }
            parents.push(chosen);
        }
        let best_kept = judgements[kept[survivors - 1]].overall;
        for &p in &order[survivors..] {
            trace.push(event(
                context,
                segment,
                attempt,
                Some(step),
                Some(names[p]),
                Decision::Prune,
                Some(&judgements[p]),
                format!(
                    "predicted segment scored {}, below the {survivors} kept (lowest kept {}); {}",
                    score(judgements[p].overall),
                    score(best_kept),
                    why(&judgements[p])
                ),
            ));
        }
        let mut new_names = Vec::with_capacity(k);
        for (slot, &p) in parents.iter().enumerate() {
            if slot < survivors {
                let copies = parents.iter().filter(|&&q| q == p).count();
                trace.push(event(
                    context,
                    segment,
                    attempt,
                    Some(step),
                    Some(names[p]),
                    Decision::Resample,
                    Some(&judgements[p]),
                    if copies > 1 {
                        format!(
                            "kept at {} and branched into {copies} particles",
                            score(judgements[p].overall)
                        )
                    } else {
                        format!("kept at {}", score(judgements[p].overall))
                    },
                ));
                new_names.push(names[p]);
            } else {
                new_names.push(next_name);
                next_name += 1;
            }
        }
        denoising.select(&parents, |copy| {
            window_noise(
                seed,
                segment.index as u64,
                u64::from(attempt),
                BRANCH_PARTICLES + (step * k + copy) as u64,
                size,
            )
        })?;
        names = new_names;
    }
    let evaluations = k * context.settings.sampler.evaluations();
    let values = denoising.current()?;
    let songs = context.decode_windows(&segment.window, &values)?;
    let copied: Vec<Option<usize>> = songs
        .iter()
        .map(|song| {
            let guard = thinking.guard?;
            let longest = guard.longest_copy(&written_lead(song, segment));
            (longest > settings.guard_limit).then_some(longest)
        })
        .collect();
    let judgements: Vec<Option<Judgement>> = match thinking.critic.as_deref_mut() {
        Some(critic) if settings.use_critic => critic
            .judge(&candidates(context, segment, songs))?
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![None; k],
    };
    let per_window = values.len() / k;
    let finished: Vec<Finished> = (0..k)
        .map(|p| Finished {
            particle: names[p],
            values: values[p * per_window..(p + 1) * per_window].to_vec(),
            judgement: judgements[p].clone(),
            copied: copied[p],
        })
        .collect();
    let accepted = if settings.use_critic {
        finished
            .iter()
            .enumerate()
            .filter(|(_, f)| f.copied.is_none())
            .max_by(|(_, a), (_, b)| overall(a).total_cmp(&overall(b)))
            .map(|(i, _)| i)
            .filter(|&i| overall(&finished[i]) >= settings.threshold)
    } else {
        let free: Vec<usize> = (0..k).filter(|&p| finished[p].copied.is_none()).collect();
        let mut rng = choice_rng(seed, segment.index, attempt, u64::MAX);
        (!free.is_empty()).then(|| free[rng.random_range(0..free.len())])
    };
    for (i, f) in finished.iter().enumerate() {
        let (decision, reason) = if Some(i) == accepted {
            (
                Decision::Accept,
                match &f.judgement {
                    Some(j) => format!(
                        "best of {k} finished candidates at {} (threshold {}); {}",
                        score(j.overall),
                        score(settings.threshold),
                        why(j)
                    ),
                    None => format!(
                        "kept candidate {} of {k} at random (no critic); {} clean context bars",
                        f.particle,
                        segment.window.len() - segment.writes.len()
                    ),
                },
            )
        } else if let Some(intervals) = f.copied {
            (
                Decision::Reject,
                format!(
                    "the lead copies a training melody for {intervals} consecutive intervals \
                     (limit {})",
                    settings.guard_limit
                ),
            )
        } else if let Some(j) = &f.judgement {
            (
                Decision::Reject,
                if j.overall < settings.threshold {
                    format!(
                        "scored {}, below the threshold {}; {}",
                        score(j.overall),
                        score(settings.threshold),
                        why(j)
                    )
                } else {
                    format!(
                        "scored {}, another candidate scored higher",
                        score(j.overall)
                    )
                },
            )
        } else {
            continue;
        };
        trace.push(event(
            context,
            segment,
            attempt,
            None,
            Some(f.particle),
            decision,
            f.judgement.as_ref(),
            reason,
        ));
    }
    Ok(Attempt {
        finished,
        accepted,
        evaluations,
    })
}

/// The lead notes of the bars a segment writes, in window time.
fn written_lead(song: &Song, segment: &Segment) -> Vec<Note> {
    let steps = song.meter.steps_per_bar();
    let written = written_range(segment);
    song.stem(Stem::Lead)
        .map(|track| {
            track
                .notes
                .iter()
                .filter(|n| written.contains(&(n.start / steps)))
                .copied()
                .collect()
        })
        .unwrap_or_default()
}

/// The window positions of the bars a segment writes.
fn written_range(segment: &Segment) -> std::ops::Range<u32> {
    let first = segment
        .window
        .iter()
        .position(|&b| b == segment.writes.start)
        .unwrap_or(0) as u32;
    first..first + segment.writes.len() as u32
}

fn candidates<B: Backend>(
    context: &SongContext<'_, B>,
    segment: &Segment,
    songs: Vec<Song>,
) -> Vec<Candidate> {
    songs
        .into_iter()
        .map(|song| Candidate {
            song,
            mood: context.plan.mood,
            written: written_range(segment),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Request, lead_sheet, plan};
    use crate::writer::tests::tiny_models;
    use crate::writer::{WriterSettings, write_song};
    use std::cell::Cell;

    /// Scores by a rule of the candidate and counts its calls.
    struct MockCritic<F: FnMut(&Candidate) -> f32> {
        rule: F,
        calls: usize,
    }

    impl<F: FnMut(&Candidate) -> f32> Critic for MockCritic<F> {
        fn judge(&mut self, candidates: &[Candidate]) -> Result<Vec<Judgement>, Error> {
            self.calls += 1;
            Ok(candidates
                .iter()
                .map(|c| {
                    let overall = (self.rule)(c);
                    Judgement {
                        overall,
                        aspects: [overall, 1.0, 1.0, 1.0, 1.0],
                        reasons: vec!["mock".into()],
                    }
                })
                .collect())
        }
    }

    /// Notes in the written bars, squashed to 0..1: any deterministic rule will do.
    fn busy(candidate: &Candidate) -> f32 {
        let steps = candidate.song.meter.steps_per_bar();
        let notes = candidate
            .song
            .stems
            .iter()
            .flat_map(|t| &t.notes)
            .filter(|n| candidate.written.contains(&(n.start / steps)))
            .count() as f32;
        notes / (notes + 20.0)
    }

    /// Writes a song of `bars` bars with `settings`, `critic` judging and no guard.
    fn write_judged(
        bars: u32,
        settings: ThinkSettings,
        critic: &mut dyn Critic,
    ) -> Result<crate::writer::Written, Error> {
        write(
            bars,
            &mut Thinking {
                settings,
                critic: Some(critic),
                guard: None,
            },
        )
    }

    fn write(bars: u32, thinking: &mut Thinking<'_>) -> Result<crate::writer::Written, Error> {
        let models = tiny_models();
        let request = Request {
            bars: Some(bars),
            seed: 3,
            ..Request::default()
        };
        let mut planned = plan(&request).unwrap();
        let sheet = lead_sheet(&mut planned);
        write_song(
            &models,
            &planned,
            &sheet,
            &WriterSettings::default(),
            thinking,
        )
    }

    fn count(trace: &[TraceEvent], segment: usize, decision: Decision) -> usize {
        trace
            .iter()
            .filter(|e| e.segment == segment && e.decision == decision)
            .count()
    }

    #[test]
    fn balanced_thinking_prunes_branches_and_accepts_deterministically() {
        let run = || {
            let mut critic = MockCritic {
                rule: busy,
                calls: 0,
            };
            let mut settings = Think::Balanced.settings();
            settings.threshold = 0.0;
            let written = write_judged(12, settings, &mut critic).unwrap();
            (written, critic.calls)
        };
        let (written, calls) = run();
        // 12 bars: a first window of 8 and one more of 4; two checkpoints and a final
        // judgement each.
        assert_eq!(written.segments.len(), 2);
        assert_eq!(calls, 6);
        for segment in 0..2 {
            assert_eq!(count(&written.trace, segment, Decision::Prune), 4);
            assert_eq!(count(&written.trace, segment, Decision::Resample), 4);
            assert_eq!(count(&written.trace, segment, Decision::Accept), 1);
            assert_eq!(count(&written.trace, segment, Decision::Reject), 3);
            assert_eq!(written.segments[segment].evaluations, 4 * 8);
        }
        let steps: BTreeMap<usize, usize> =
            written
                .trace
                .iter()
                .filter_map(|e| e.step)
                .fold(BTreeMap::new(), |mut m, s| {
                    *m.entry(s).or_default() += 1;
                    m
                });
        assert_eq!(steps.keys().copied().collect::<Vec<_>>(), [3, 6]);
        // The accepted candidate is the best finished one.
        let accepted = written
            .trace
            .iter()
            .find(|e| e.segment == 0 && e.decision == Decision::Accept)
            .unwrap();
        assert!(
            written
                .trace
                .iter()
                .filter(|e| e.segment == 0 && e.step.is_none())
                .all(|e| e.overall.unwrap() <= accepted.overall.unwrap())
        );
        assert_eq!(accepted.aspects.len(), ASPECTS.len());
        let (again, _) = run();
        assert_eq!(written.song, again.song);
        assert_eq!(written.trace, again.trace);
    }

    #[test]
    fn a_segment_that_never_clears_is_retried_then_backtracks_then_keeps_its_best() {
        // Every candidate of the second segment fails; the first always passes.
        let mut critic = MockCritic {
            rule: |c: &Candidate| if c.written.start == 0 { 0.9 } else { 0.1 },
            calls: 0,
        };
        let written = write_judged(12, Think::Balanced.settings(), &mut critic).unwrap();
        let trace = &written.trace;
        // Three attempts, a backtrack, the first segment again, three more attempts and a
        // wider last one.
        assert_eq!(count(trace, 1, Decision::Retract), 7);
        assert_eq!(count(trace, 0, Decision::Backtrack), 1);
        assert_eq!(count(trace, 0, Decision::Accept), 2);
        let last = trace.last().unwrap();
        assert_eq!((last.segment, last.decision), (1, Decision::Accept));
        assert!(
            last.reason.contains("below the threshold")
                && last.reason.contains("a last attempt with 16 particles"),
            "{}",
            last.reason
        );
        let retracts: Vec<_> = trace
            .iter()
            .filter(|e| e.segment == 1 && e.decision == Decision::Retract)
            .collect();
        assert!(
            retracts[5]
                .reason
                .ends_with("one last attempt with 16 particles instead of 4")
        );
        assert!(retracts[6].reason.ends_with("trying fresh noise"));
        // Attempts never reuse noise: the first segment's second acceptance is attempt 1.
        assert_eq!(written.segments[0].attempt, 1);
        assert_eq!(written.segments[1].evaluations, 6 * 4 * 8 + 16 * 8);
        assert!(written.segments[1].score.unwrap() < 0.5);
    }

    /// Passes only the candidates of attempts wider than `width` particles.
    struct WideOnly {
        width: usize,
    }

    impl Critic for WideOnly {
        fn judge(&mut self, candidates: &[Candidate]) -> Result<Vec<Judgement>, Error> {
            let overall = if candidates.len() > self.width {
                0.9
            } else {
                0.1
            };
            Ok(vec![
                Judgement {
                    overall,
                    aspects: [overall; ASPECTS.len()],
                    reasons: vec!["mock".into()],
                };
                candidates.len()
            ])
        }
    }

    #[test]
    fn scores_in_reasons_keep_two_significant_digits_when_small() {
        assert_eq!(score(0.934), "0.93");
        assert_eq!(score(0.1), "0.10");
        assert_eq!(score(0.0014), "0.0014");
        assert_eq!(score(0.05), "0.050");
        assert_eq!(score(0.0), "0.00");
    }

    #[test]
    fn the_wider_last_attempt_can_save_a_segment_with_no_backtrack_left() {
        // The first segment has nothing to backtrack to: after three narrow attempts it gets
        // one with four times the particles, which passes.
        let mut critic = WideOnly { width: 4 };
        let written = write_judged(8, Think::Balanced.settings(), &mut critic).unwrap();
        let trace = &written.trace;
        assert_eq!(count(trace, 0, Decision::Retract), 3);
        assert_eq!(count(trace, 0, Decision::Backtrack), 0);
        let accepted = trace
            .iter()
            .find(|e| e.segment == 0 && e.decision == Decision::Accept)
            .unwrap();
        assert_eq!(accepted.attempt, 3);
        assert!(!accepted.reason.contains("below the threshold"));
        assert_eq!(written.segments[0].attempt, 3);
        assert_eq!(written.segments[0].evaluations, 3 * 4 * 8 + 16 * 8);
        assert!(written.segments[0].score.unwrap() > 0.5);
    }

    struct CountingGuard {
        calls: Cell<usize>,
        flag_first: usize,
    }

    impl CopyGuard for CountingGuard {
        fn longest_copy(&self, _lead: &[Note]) -> usize {
            let call = self.calls.get();
            self.calls.set(call + 1);
            if call < self.flag_first { 100 } else { 0 }
        }
    }

    #[test]
    fn without_a_critic_one_of_k_is_kept_at_random_and_guarded_copies_never() {
        let guard = CountingGuard {
            calls: Cell::new(0),
            flag_first: 1,
        };
        let mut settings = Think::None.settings();
        settings.particles = 3;
        let written = write(
            8,
            &mut Thinking {
                settings,
                critic: None,
                guard: Some(&guard),
            },
        )
        .unwrap();
        let trace = &written.trace;
        assert_eq!(written.segments[0].evaluations, 3 * 8);
        assert_eq!(count(trace, 0, Decision::Accept), 1);
        let rejected: Vec<_> = trace
            .iter()
            .filter(|e| e.decision == Decision::Reject)
            .collect();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].particle, Some(0));
        assert!(rejected[0].reason.contains("copies a training melody"));
        let accepted = trace
            .iter()
            .find(|e| e.decision == Decision::Accept)
            .unwrap();
        assert_ne!(accepted.particle, Some(0));
        assert!(accepted.overall.is_none());
    }

    #[test]
    fn presets_parse_and_thinking_without_a_critic_is_refused() {
        for think in Think::ALL {
            assert_eq!(think.name().parse::<Think>().unwrap(), think);
            think.settings().check().unwrap();
        }
        assert!("hard".parse::<Think>().is_err());
        let error = write(
            4,
            &mut Thinking {
                settings: Think::Fast.settings(),
                critic: None,
                guard: None,
            },
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("--think none"), "{error}");
        let mut settings = Think::None.settings();
        settings.particles = 0;
        assert!(settings.check().is_err());
    }
}
