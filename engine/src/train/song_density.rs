//! Density and groove calibration on whole written songs. The window calibration
//! ([`crate::train::calibrate`]) matches each stem's onsets in sampled 8-bar windows to the
//! real windows', and their bar-to-bar groove, but a song is a chain of windows, each
//! continuing from the bars written before it, and along that chain some stems drift denser
//! than the windows were fitted to (and a drum kit's classes play in other proportions than
//! the data's), and repeat their rhythm less from bar to bar. This stage writes songs per
//! style (under requests like users', or training pieces' own: style, mood, tempo, key,
//! meter, length), compares them with the style's training pieces, and corrects, in a few
//! rounds, each pitched stem's onset shift until the median notes per bar per song match,
//! each drum class's own shift (`DitConfig::drum_shift_by_style`) until its mean onsets per
//! bar match, and, in a style whose songs repeat their rhythm less than its pieces, each
//! stem's rhythm lift (`DitConfig::rhythm_lift_by_style`, only ever raised) until its median
//! groove matches (opt-in: fitted on every stem of every looser style it cost more than it
//! gained at the held-out pieces' lengths; the shipped file fits the pitched stems' lifts of
//! the styles below their pieces' lower quartile only).
//! With `match_polyphony` (as the shipped file was fitted, at the pieces' mean), a pitched
//! stem whose style's pieces play a varying number of notes at once (jazz's chords) fits its
//! shift to their polyphony and density together.
//! Optionally a value steps only while its songs lie more than some standard errors of their
//! median (or mean) from its target, a smaller gap being the songs' sampling noise (tried,
//! not shipped: holding within two let drum kits' polyphony drift, docs/MODEL_CARD.md). Each
//! value then keeps the round whose songs came closest to its target; with the lifts, each
//! style keeps its closest round on all its figures together (a stem aimed at polyphony
//! counting both its gaps), and any other style each value's own closest round. The lifts can
//! be limited to the pitched stems ([`LiftStems`]), and to styles whose first songs fall
//! below their pieces' lower quartile of groove rather than their median ([`GrooveMark`]).
//! Only training pieces are read: held-out pieces stay the evaluation's.

use crate::Error;
use crate::dataset::{Piece, Split};
use crate::generate;
use crate::model::rhythm;
use crate::music::{DrumClass, Song, Stem, Style};
use crate::plan::Request;
use crate::reasoning::Thinking;
use crate::train::plan_harmony::quartiles;
use crate::writer::{Models, WriterSettings};
use burn::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Densities below this (notes per bar) count as this much: a class the data almost never
/// plays is pushed down to it, not towards zero.
const DENSITY_FLOOR: f64 = 0.02;
/// How much log density one logit of shift moves when nothing has been measured yet: in the
/// sparse tail of a sigmoid each logit multiplies the onsets by about e.
const SLOPE_PRIOR: f64 = 1.0;
/// Bounds of a measured slope (log density per logit) and of one round's step (logits).
/// Onset logits sit far from the threshold in most cells, so whole songs' densities move
/// slowly with the shift: 0.05-0.3 per logit where measured.
const SLOPE_RANGE: (f64, f64) = (0.05, 4.0);
const MAX_STEP: f64 = 2.0;
/// Bounds of a fitted shift, in logits.
const MAX_SONG_SHIFT: f32 = 8.0;
/// How much a stem's polyphony (notes sounding at once) rises per logit of onset shift, where
/// it is not fixed by the style: about 0.07-0.16 on jazz's chords (24 songs at two shifts,
/// and the 800-song evaluation). Too noisy to measure between two rounds, so assumed.
const POLYPHONY_SLOPE: f64 = 0.1;
/// Smallest spread (log notes per bar, and notes sounding at once) a figure is measured in
/// when density and polyphony are matched together.
const SPREAD_FLOOR: f64 = 0.05;
/// How much groove one logit of rhythm lift adds when nothing has been measured yet (on
/// windows, a line's groove rises about 0.1 per logit up to the real one), and the bounds of
/// a measured slope.
const GROOVE_SLOPE_PRIOR: f64 = 0.05;
const GROOVE_SLOPE_RANGE: (f64, f64) = (0.01, 0.5);
/// Largest rhythm lift fitted on songs, in logits: past the windows' bound
/// ([`crate::train::calibrate::MAX_LIFT`]), where a song's chain of windows repeats its
/// rhythm less than the windows do.
const MAX_SONG_LIFT: f32 = 12.0;

/// What a [`ValueSearch`] brings to its target, and with what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Notes (or onsets) per bar, moved by an onset shift; compared in log density.
    Density,
    /// Groove (mean bar-to-bar similarity of onset steps, 0 to 1), moved by a rhythm lift;
    /// compared as it is.
    Groove,
}

impl Figure {
    /// What counts as close: a tenth in density (log), 0.02 in groove.
    fn close(self) -> f64 {
        match self {
            Figure::Density => 0.1,
            Figure::Groove => 0.02,
        }
    }

    /// The slope assumed before two rounds are measured, and the bounds of a measured one.
    fn slopes(self) -> (f64, (f64, f64)) {
        match self {
            Figure::Density => (SLOPE_PRIOR, SLOPE_RANGE),
            Figure::Groove => (GROOVE_SLOPE_PRIOR, GROOVE_SLOPE_RANGE),
        }
    }
}

/// The search for one decoding value (an onset shift, or a rhythm lift) that brings one
/// figure of written songs to its target: Newton steps, the slope measured between the last
/// two rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValueSearch {
    pub figure: Figure,
    pub target: f64,
    /// The lowest and highest value tried.
    pub bounds: (f32, f32),
    /// `(value, measured)` of each round so far.
    pub tried: Vec<(f32, f64)>,
    /// Per round tried, how close (in the gap's units: log density, or groove) its songs had
    /// to come to the target to keep the value they were written with: some standard errors
    /// of the measured figure ([`SongRounds::hold_within_errors`]; 0: always step).
    pub tolerances: Vec<f64>,
    /// For a stem whose style plays a varying number of notes at once: its polyphony, which
    /// the shift moves too and the search then matches with the density (`None`: the density
    /// alone).
    pub polyphony: Option<PolyphonyAim>,
}

/// The polyphony a density search also aims at, and how both are weighed: each gap in units
/// of the training pieces' interquartile range, so the shift lands where the songs' two
/// figures lie nearest the middle of the pieces' together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolyphonyAim {
    /// The training pieces' polyphony at the [`Centre`] aimed at (median or mean).
    pub target: f64,
    /// The pieces' interquartile range of polyphony, and of log notes per bar.
    pub spread: f64,
    pub density_spread: f64,
    /// The songs' median polyphony in each round tried.
    pub measured: Vec<f64>,
}

impl ValueSearch {
    /// A search for the onset shift that makes a density `target` notes per bar.
    pub fn density(target: f64) -> ValueSearch {
        ValueSearch {
            figure: Figure::Density,
            target,
            bounds: (-MAX_SONG_SHIFT, MAX_SONG_SHIFT),
            tried: Vec::new(),
            tolerances: Vec::new(),
            polyphony: None,
        }
    }

    /// A search for the rhythm lift, from `floor` up, that makes the groove `target`.
    pub fn groove(target: f64, floor: f32) -> ValueSearch {
        ValueSearch {
            figure: Figure::Groove,
            bounds: (floor.clamp(0.0, MAX_SONG_LIFT), MAX_SONG_LIFT),
            ..ValueSearch::density(target)
        }
    }

    /// How far `measured` lies from the target (positive: too thin, or too loose).
    fn gap(&self, measured: f64) -> f64 {
        match self.figure {
            Figure::Density => {
                self.target.max(DENSITY_FLOOR).ln() - measured.max(DENSITY_FLOOR).ln()
            }
            Figure::Groove => self.target - measured,
        }
    }

    /// The value to try next (`start` when nothing was tried yet; the last value while its
    /// songs lie within the tolerance of the target).
    pub fn next(&self, start: f32) -> f32 {
        let Some(&(value, measured)) = self.tried.last() else {
            return start;
        };
        if self.gap(measured).abs() <= self.tolerances.last().copied().unwrap_or(0.0) {
            return value;
        }
        let (prior, range) = self.figure.slopes();
        let slope = match self.tried.len().checked_sub(2).map(|i| self.tried[i]) {
            Some((before, measured_before)) if (value - before).abs() > 1e-4 => {
                let slope =
                    (self.gap(measured_before) - self.gap(measured)) / f64::from(value - before);
                // A figure that did not move calls for a longer step; one that moved the
                // wrong way is noise, and the prior stands.
                if slope >= 0.0 {
                    slope.clamp(range.0, range.1)
                } else {
                    prior
                }
            }
            _ => prior,
        };
        let step = match self.aimed_gaps(self.tried.len() - 1) {
            // Least squares over both gaps (in spreads), each moving linearly with the shift.
            Some((density_gap, polyphony_gap, aim)) => {
                let density_slope = slope / aim.density_spread;
                let polyphony_slope = POLYPHONY_SLOPE / aim.spread;
                (density_slope * density_gap + polyphony_slope * polyphony_gap)
                    / (density_slope.powi(2) + polyphony_slope.powi(2))
            }
            None => self.gap(measured) / slope,
        }
        .clamp(-MAX_STEP, MAX_STEP);
        (value + step as f32).clamp(self.bounds.0, self.bounds.1)
    }

    /// Round `round`'s density and polyphony gaps in spreads of the pieces' (positive: too
    /// few), with the aim (`None`: no polyphony aimed at, or none measured that round).
    fn aimed_gaps(&self, round: usize) -> Option<(f64, f64, &PolyphonyAim)> {
        let aim = self.polyphony.as_ref()?;
        let polyphony = aim.measured.get(round)?;
        let density_gap = self.gap(self.tried.get(round)?.1) / aim.density_spread;
        Some((density_gap, (aim.target - polyphony) / aim.spread, aim))
    }

    /// The tried value whose songs came closest to the target (`start` when none was tried).
    pub fn best(&self, start: f32) -> f32 {
        // With a polyphony aim, by both gaps together (in spreads).
        let distance = |round: usize| match self.aimed_gaps(round) {
            Some((density, polyphony, _)) => density.hypot(polyphony),
            None => self.gap(self.tried[round].1).abs(),
        };
        (0..self.tried.len())
            .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
            .map_or(start, |round| self.tried[round].0)
    }

    /// How far `measured` lies from the target in units of what counts as close: a tenth in
    /// density (log), 0.02 in groove.
    pub fn weighted_gap(&self, measured: f64) -> f64 {
        self.gap(measured).abs() / self.figure.close()
    }

    /// How far round `round`'s songs lay from the target, as [`Self::weighted_gap`]; with a
    /// polyphony aim, both gaps together, the polyphony's taken into log density by the
    /// ratio of the pieces' spreads (as [`Self::best`] weighs them).
    pub fn weighted_round_gap(&self, round: usize) -> f64 {
        match self.aimed_gaps(round) {
            Some((density, polyphony, aim)) => {
                density.hypot(polyphony) * aim.density_spread / self.figure.close()
            }
            None => self.weighted_gap(self.tried[round].1),
        }
    }
}

/// What one song or piece is compared on: per stem (in `Stem::ALL` order) notes per bar and
/// groove, per drum class onsets per bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SongMeasures {
    /// `None` for a stem the song does not have.
    pub stems: Vec<Option<f64>>,
    /// `None` for a stem the song does not have, or with no two neighbouring bars sounding.
    pub grooves: Vec<Option<f64>>,
    /// The whole song's groove, over every stem's pairs of bars (`None`: no pair).
    pub groove: Option<f64>,
    /// `None` when the song has no drum stem.
    pub drum_classes: Option<Vec<f64>>,
    /// Notes sounding at once ([`rhythm::polyphony`]); `None` for a stem the song does not
    /// have.
    pub polyphony: Vec<Option<f64>>,
}

impl SongMeasures {
    pub fn of(song: &Song) -> SongMeasures {
        let bars = f64::from(song.bars.max(1));
        let track = |stem: Stem| song.stems.iter().find(|t| t.stem == stem);
        let stems = Stem::ALL
            .iter()
            .map(|&stem| track(stem).map(|t| t.notes.len() as f64 / bars))
            .collect();
        let polyphony = Stem::ALL
            .iter()
            .map(|&stem| track(stem).map(|t| rhythm::polyphony(&t.notes, song.steps())))
            .collect();
        let sums: Vec<Option<(f64, usize)>> = Stem::ALL
            .iter()
            .map(|&stem| {
                let track = track(stem)?;
                Some(rhythm::groove_sum(
                    &track.notes,
                    song.bars,
                    song.meter.steps_per_bar(),
                ))
            })
            .collect();
        let mean = |(sum, pairs): (f64, usize)| (pairs > 0).then(|| sum / pairs as f64);
        let grooves = sums.iter().map(|s| s.and_then(mean)).collect();
        let groove = mean(
            sums.iter()
                .flatten()
                .fold((0.0, 0), |(sum, pairs), s| (sum + s.0, pairs + s.1)),
        );
        let drum_classes = track(Stem::Drums).map(|t| {
            let mut counts = vec![0.0; DrumClass::ALL.len()];
            for note in &t.notes {
                if let Some(count) = usize::try_from(note.pitch)
                    .ok()
                    .and_then(|c| counts.get_mut(c))
                {
                    *count += 1.0;
                }
            }
            counts.into_iter().map(|c| c / bars).collect()
        });
        SongMeasures {
            stems,
            grooves,
            groove,
            drum_classes,
            polyphony,
        }
    }
}

/// What a style's songs are compared on: the median over songs of each stem's notes per bar
/// and of its groove (as `refrain evaluate dit` compares them), the mean of each drum class's
/// onsets per bar; and the standard error of each, in the units a [`ValueSearch`] compares
/// it in (log density; groove as it is).
#[derive(Clone, Debug, PartialEq)]
pub struct StyleFigures {
    pub notes_per_bar: Vec<Option<f64>>,
    pub grooves: Vec<Option<f64>>,
    /// The median of the songs' whole groove, and its lower quartile.
    pub groove: Option<f64>,
    pub groove_lower_quartile: Option<f64>,
    pub drum_classes: Option<Vec<f64>>,
    pub notes_per_bar_errors: Vec<Option<f64>>,
    pub groove_errors: Vec<Option<f64>>,
    pub drum_class_errors: Option<Vec<f64>>,
    /// The median over songs of each stem's polyphony.
    pub polyphony: Vec<Option<f64>>,
}

impl StyleFigures {
    pub fn of(songs: &[SongMeasures]) -> StyleFigures {
        let per_stem = |figure: fn(&SongMeasures) -> &Vec<Option<f64>>| -> Vec<Vec<f64>> {
            (0..Stem::ALL.len())
                .map(|s| {
                    let mut values: Vec<f64> = songs.iter().filter_map(|m| figure(m)[s]).collect();
                    values.sort_by(f64::total_cmp);
                    values
                })
                .collect()
        };
        let (densities, stem_grooves) = (per_stem(|m| &m.stems), per_stem(|m| &m.grooves));
        let polyphony = per_stem(|m| &m.polyphony);
        let kits: Vec<&Vec<f64>> = songs
            .iter()
            .filter_map(|m| m.drum_classes.as_ref())
            .collect();
        let kit_mean = |c: usize| kits.iter().map(|k| k[c]).sum::<f64>() / kits.len() as f64;
        let drum_classes: Option<Vec<f64>> =
            (!kits.is_empty()).then(|| (0..DrumClass::ALL.len()).map(kit_mean).collect());
        // The standard error of a mean over n kits, relative to the mean (log units).
        let drum_class_errors = drum_classes.as_ref().map(|means| {
            let n = kits.len() as f64;
            means
                .iter()
                .enumerate()
                .map(|(c, &mean)| {
                    let variance = kits.iter().map(|k| (k[c] - mean).powi(2)).sum::<f64>()
                        / (n - 1.0).max(1.0);
                    (variance / n).sqrt() / mean.max(DENSITY_FLOOR)
                })
                .collect()
        });
        let mut grooves: Vec<f64> = songs.iter().filter_map(|m| m.groove).collect();
        grooves.sort_by(f64::total_cmp);
        let log_density = |x: f64| x.max(DENSITY_FLOOR).ln();
        StyleFigures {
            notes_per_bar: densities.iter().map(|v| median(v)).collect(),
            grooves: stem_grooves.iter().map(|v| median(v)).collect(),
            groove: median(&grooves),
            groove_lower_quartile: (!grooves.is_empty()).then(|| quartiles(&mut grooves)[0]),
            drum_classes,
            notes_per_bar_errors: densities
                .iter()
                .map(|v| median_error(v, log_density))
                .collect(),
            groove_errors: stem_grooves
                .iter()
                .map(|v| median_error(v, |g| g))
                .collect(),
            drum_class_errors,
            polyphony: polyphony.iter().map(|v| median(v)).collect(),
        }
    }
}

/// The polyphony aim of each stem (in `Stem::ALL` order) of a style's training pieces: for
/// a pitched stem whose pieces play a varying number of notes at once (the interquartile
/// range of their polyphony is not empty), its `centre` and spreads; `None` for the rest.
pub fn polyphony_aims(pieces: &[SongMeasures], centre: Centre) -> Vec<Option<PolyphonyAim>> {
    Stem::ALL
        .iter()
        .enumerate()
        .map(|(s, stem)| {
            if !stem.is_pitched() {
                return None;
            }
            let mut polyphony: Vec<f64> = pieces.iter().filter_map(|m| m.polyphony[s]).collect();
            if polyphony.is_empty() {
                return None;
            }
            let mut density: Vec<f64> = pieces
                .iter()
                .filter_map(|m| m.stems[s])
                .map(|d| d.max(DENSITY_FLOOR).ln())
                .collect();
            let mean = polyphony.iter().sum::<f64>() / polyphony.len() as f64;
            let [low, middle, high] = quartiles(&mut polyphony);
            let [density_low, _, density_high] = quartiles(&mut density);
            (high > low).then(|| PolyphonyAim {
                target: match centre {
                    Centre::Median => middle,
                    Centre::Mean => mean,
                },
                spread: (high - low).max(SPREAD_FLOOR),
                density_spread: (density_high - density_low).max(SPREAD_FLOOR),
                measured: Vec::new(),
            })
        })
        .collect()
}

/// The median of sorted values (`None` for none).
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
    }
}

/// The standard error of the median of sorted values, measured as `unit` measures them:
/// half the spread between the order statistics a standard error either side of the middle
/// rank (n/2 ± √n/2), which needs no assumption about the values' distribution (`None` for
/// fewer than two values).
fn median_error(sorted: &[f64], unit: impl Fn(f64) -> f64) -> Option<f64> {
    let n = sorted.len();
    if n < 2 {
        return None;
    }
    let (middle, half) = (n as f64 / 2.0, (n as f64).sqrt() / 2.0);
    let low = (middle - half).floor().max(0.0) as usize;
    let high = ((middle + half).ceil() as usize).min(n - 1);
    Some(0.5 * (unit(sorted[high]) - unit(sorted[low])))
}

/// The training pieces' densities and the requests to write, per style.
#[derive(Clone, Debug, Default)]
pub struct SongDensityData {
    pub densities: BTreeMap<Style, Vec<SongMeasures>>,
    pub requests: BTreeMap<Style, Vec<Request>>,
}

impl SongDensityData {
    /// From the dataset's pieces (training pieces only are read): every one's densities, and
    /// per style the requests of `songs` of them spread evenly over the style's pieces (by
    /// id), each with its own seed drawn from `seed`.
    pub fn of(pieces: &[Piece], songs: usize, seed: u64) -> SongDensityData {
        let mut data = SongDensityData::default();
        let mut by_style: BTreeMap<Style, Vec<&Piece>> = BTreeMap::new();
        for piece in pieces.iter().filter(|p| p.split == Split::Train) {
            data.densities
                .entry(piece.style)
                .or_default()
                .push(SongMeasures::of(&piece.to_song()));
            by_style.entry(piece.style).or_default().push(piece);
        }
        for (style, mut pieces) in by_style {
            pieces.sort_by(|a, b| a.id.cmp(&b.id));
            let chosen = songs.min(pieces.len());
            let requests = (0..chosen)
                .map(|i| pieces[i * pieces.len() / chosen].request(seed ^ (0x50e6_0000 + i as u64)))
                .collect();
            data.requests.insert(style, requests);
        }
        data
    }
}

/// One style's fit: a search per pitched stem (`None`: the style's pieces lack the stem, or
/// it is the drums), per stem's rhythm lift (`None`: lifts not fitted, the style's first
/// songs repeat their rhythm as much as its pieces already, or no two neighbouring bars of
/// the stem sound in its pieces) and per drum class (empty: the style's pieces have no
/// drums).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StyleSongFit {
    pub style: Style,
    pub stems: Vec<Option<ValueSearch>>,
    /// The stems' shifts before this stage (the window calibration's) and after.
    pub stem_shifts: Vec<(f32, f32)>,
    pub lifts: Vec<Option<ValueSearch>>,
    /// The stems' rhythm lifts before this stage and after.
    pub stem_lifts: Vec<(f32, f32)>,
    /// The whole songs' groove (median over songs): the training pieces', the first round's.
    pub groove: (Option<f64>, Option<f64>),
    /// The training pieces' whole groove the first round's must fall below for the style's
    /// lifts to be fitted ([`SongRounds::lift_below`]).
    pub lift_bar: Option<f64>,
    /// Per round, how far the style's songs came from its pieces, all figures together
    /// ([`ValueSearch::weighted_round_gap`]).
    pub round_gaps: Vec<f64>,
    /// The closest round (`None`: no round written); its values are the ones kept when the
    /// lifts are fitted.
    pub kept_round: Option<usize>,
    /// Per round, the style's stem shifts, lifts and drum-class shifts tried.
    #[serde(skip)]
    round_values: Vec<[Vec<f32>; 3]>,
    pub drum_classes: Vec<ValueSearch>,
    pub drum_shifts: Vec<f32>,
}

/// How the song rounds run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SongRounds {
    /// Rounds of writing every style's requests.
    pub rounds: usize,
    /// Also fit the rhythm lifts of these stems (see the module doc); `None`: keep every lift.
    pub fit_lifts: Option<LiftStems>,
    /// How far below its training pieces' whole groove a style's first songs must fall for
    /// its lifts to be fitted.
    pub lift_below: GrooveMark,
    /// How many standard errors of its songs' figure a value's gap must pass for the value
    /// to step ([`ValueSearch::tolerances`]); 0 steps on any gap (as the shipped file was
    /// fitted).
    pub hold_within_errors: f64,
    /// Where a style's pieces play a varying number of notes at once in a pitched stem, fit
    /// its shift to their polyphony (this centre of it) and density together
    /// ([`PolyphonyAim`]); `None`: the density alone.
    pub match_polyphony: Option<Centre>,
}

/// Which stems' rhythm lifts the song rounds fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiftStems {
    /// Every stem's, the drums' included.
    All,
    /// The pitched stems' only: a drum kit whose bars repeat stacks its hits on the same
    /// steps, so lifting the drums took drums polyphony out of the data's range wherever it
    /// brought groove in (docs/MODEL_CARD.md), while the bass repeats its rhythm less than
    /// the pieces' in every style.
    Pitched,
}

impl LiftStems {
    /// Whether `stem`'s lift is fitted.
    pub fn includes(self, stem: Stem) -> bool {
        match self {
            LiftStems::All => true,
            LiftStems::Pitched => stem.is_pitched(),
        }
    }
}

/// Which of the training pieces' whole-song grooves a style's first songs must fall below
/// for its lifts to be fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrooveMark {
    /// The median: any style looser than its pieces.
    Median,
    /// The lower quartile: only a style whose songs lie outside the pieces' range, so a style
    /// already inside keeps what it has (a lift is a decoding prior over the model's own
    /// rhythm, and moves the stems' density and polyphony too).
    LowerQuartile,
}

/// Which central value of the training pieces' polyphony a song round aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Centre {
    Median,
    /// The mean: where the pieces split between two voicings (jazz's chords: half play
    /// triads, half sevenths), their median sits on one of them and the mean between.
    Mean,
}

/// Fits, in `rounds.rounds` rounds of writing every style's requests in `data` with
/// `settings`, each style's pitched stems' onset shifts and drum classes' shifts so its
/// songs match the training pieces' densities, and (with `fit_lifts`) every stem's rhythm
/// lift so they repeat their rhythm from bar to bar as much (see the module doc); stores the
/// best tried in `models.dit_config`. `progress` hears the songs written so far.
pub fn fit_song_density<B: Backend>(
    models: &mut Models<B>,
    data: &SongDensityData,
    settings: &WriterSettings,
    rounds: SongRounds,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<StyleSongFit>, Error> {
    let SongRounds {
        rounds,
        fit_lifts,
        lift_below,
        hold_within_errors,
        match_polyphony,
    } = rounds;
    let stems = Stem::ALL.len();
    let classes = DrumClass::ALL.len();
    let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums);
    let config = &mut models.dit_config;
    let every_stem = || {
        Style::ALL
            .iter()
            .flat_map(|&style| (0..stems).map(move |s| (style, s)))
    };
    config.onset_shift_by_style = every_stem()
        .map(|(style, s)| config.onset_shift_of(style, s))
        .collect();
    config.rhythm_lift_by_style = every_stem()
        .map(|(style, s)| config.rhythm_lift_of(style, s))
        .collect();
    if config.drum_shift_by_style.is_empty() {
        config.drum_shift_by_style = vec![0.0; Style::ALL.len() * classes];
    }
    let mut fits: Vec<StyleSongFit> = Vec::new();
    for (&style, measures) in &data.densities {
        let targets = StyleFigures::of(measures);
        let aims = match match_polyphony {
            Some(centre) => polyphony_aims(measures, centre),
            None => vec![None; stems],
        };
        let number = style.number();
        let shifts: Vec<f32> = config.onset_shift_by_style[number * stems..][..stems].to_vec();
        let lifts: Vec<f32> = config.rhythm_lift_by_style[number * stems..][..stems].to_vec();
        fits.push(StyleSongFit {
            style,
            stems: targets
                .notes_per_bar
                .iter()
                .zip(aims)
                .enumerate()
                .map(|(s, (target, aim))| {
                    target
                        .filter(|_| Some(s) != drums)
                        .map(|target| ValueSearch {
                            polyphony: aim,
                            ..ValueSearch::density(target)
                        })
                })
                .collect(),
            stem_shifts: shifts.iter().map(|&s| (s, s)).collect(),
            lifts: Stem::ALL
                .iter()
                .zip(&targets.grooves)
                .zip(&lifts)
                .map(|((&stem, target), &lift)| {
                    target
                        .filter(|_| fit_lifts.is_some_and(|stems| stems.includes(stem)))
                        .map(|target| ValueSearch::groove(target, lift))
                })
                .collect(),
            groove: (targets.groove, None),
            lift_bar: match lift_below {
                GrooveMark::Median => targets.groove,
                GrooveMark::LowerQuartile => targets.groove_lower_quartile,
            },
            round_gaps: Vec::new(),
            kept_round: None,
            round_values: Vec::new(),
            stem_lifts: lifts.iter().map(|&l| (l, l)).collect(),
            drum_classes: targets
                .drum_classes
                .unwrap_or_default()
                .into_iter()
                .map(ValueSearch::density)
                .collect(),
            drum_shifts: config.drum_shift_by_style[number * classes..][..classes].to_vec(),
        });
    }
    let mut written = 0;
    for round in 0..rounds {
        let config = &mut models.dit_config;
        for fit in &fits {
            let at = fit.style.number() * stems;
            for s in 0..stems {
                if let Some(search) = &fit.stems[s] {
                    config.onset_shift_by_style[at + s] = search.next(fit.stem_shifts[s].0);
                }
                if let Some(search) = &fit.lifts[s] {
                    config.rhythm_lift_by_style[at + s] = search.next(fit.stem_lifts[s].0);
                }
            }
            let at = fit.style.number() * classes;
            for (c, search) in fit.drum_classes.iter().enumerate() {
                config.drum_shift_by_style[at + c] = search.next(fit.drum_shifts[c]);
            }
        }
        for fit in &mut fits {
            let mut songs = Vec::new();
            for request in data.requests.get(&fit.style).into_iter().flatten() {
                let (_, song) = generate::compose(request, models, settings, &mut Thinking::none())
                    .map_err(|e| {
                        Error::Model(format!(
                            "writing a {} calibration song (seed {}): {e}",
                            fit.style.name(),
                            request.seed
                        ))
                    })?;
                songs.push(SongMeasures::of(&song.song));
                written += 1;
                progress(written);
            }
            let measured = StyleFigures::of(&songs);
            if round == 0 {
                fit.groove.1 = measured.groove;
                // Lifts only ever rise, and only in a style whose songs repeat their rhythm
                // less than its pieces: stems' grooves can match one by one while the
                // whole song's overshoots, where the steadier stems sound more of its bars.
                if fit.groove.1 >= fit.lift_bar {
                    fit.lifts.iter_mut().for_each(|search| *search = None);
                }
            }
            let config = &models.dit_config;
            let (at, at_classes) = (fit.style.number() * stems, fit.style.number() * classes);
            // Every stem's density and groove counts alike; the drum classes together count
            // as one stem, each by its share of the kit.
            let tolerance = |error: Option<f64>| hold_within_errors * error.unwrap_or(0.0);
            let mut gap = 0.0;
            for s in 0..stems {
                if let (Some(search), Some(figure)) = (&mut fit.stems[s], measured.notes_per_bar[s])
                {
                    search
                        .tried
                        .push((config.onset_shift_by_style[at + s], figure));
                    search
                        .tolerances
                        .push(tolerance(measured.notes_per_bar_errors[s]));
                    if let (Some(aim), Some(polyphony)) =
                        (&mut search.polyphony, measured.polyphony[s])
                    {
                        aim.measured.push(polyphony);
                    }
                    gap += search.weighted_round_gap(search.tried.len() - 1);
                }
                if let (Some(search), Some(figure)) = (&mut fit.lifts[s], measured.grooves[s]) {
                    gap += search.weighted_gap(figure);
                    search
                        .tried
                        .push((config.rhythm_lift_by_style[at + s], figure));
                    search.tolerances.push(tolerance(measured.groove_errors[s]));
                }
            }
            let kit: f64 = fit.drum_classes.iter().map(|c| c.target).sum();
            for (c, search) in fit.drum_classes.iter_mut().enumerate() {
                if let Some(figure) = measured.drum_classes.as_ref().map(|f| f[c]) {
                    if kit > 0.0 {
                        gap += search.target / kit * search.weighted_gap(figure);
                    }
                    search
                        .tried
                        .push((config.drum_shift_by_style[at_classes + c], figure));
                    search
                        .tolerances
                        .push(tolerance(measured.drum_class_errors.as_ref().map(|e| e[c])));
                }
            }
            fit.round_gaps.push(gap);
            fit.round_values.push([
                config.onset_shift_by_style[at..][..stems].to_vec(),
                config.rhythm_lift_by_style[at..][..stems].to_vec(),
                config.drum_shift_by_style[at_classes..][..classes].to_vec(),
            ]);
        }
    }
    // A style whose lifts were fitted keeps the round whose songs came closest, all its
    // values together: a lift thins the stem its shift was matching, so the best of each
    // figure, taken from different rounds, was never measured together (rock's texture fell
    // from 3.7 to 1.6 notes per bar that way). Any other keeps each value's own closest
    // tried (as the shipped calibration was made).
    let config = &mut models.dit_config;
    for fit in &mut fits {
        fit.kept_round = (0..fit.round_gaps.len())
            .min_by(|&a, &b| fit.round_gaps[a].total_cmp(&fit.round_gaps[b]));
        if fit.lifts.iter().all(Option::is_none) {
            let (at, at_classes) = (fit.style.number() * stems, fit.style.number() * classes);
            for (s, search) in fit.stems.iter().enumerate() {
                if let Some(search) = search {
                    config.onset_shift_by_style[at + s] = search.best(fit.stem_shifts[s].0);
                }
            }
            for (c, search) in fit.drum_classes.iter().enumerate() {
                config.drum_shift_by_style[at_classes + c] = search.best(fit.drum_shifts[c]);
            }
        } else if let Some(kept) = fit.kept_round {
            let [shifts, lifts, drums] = &fit.round_values[kept];
            let (at, at_classes) = (fit.style.number() * stems, fit.style.number() * classes);
            config.onset_shift_by_style[at..][..stems].copy_from_slice(shifts);
            config.rhythm_lift_by_style[at..][..stems].copy_from_slice(lifts);
            config.drum_shift_by_style[at_classes..][..classes].copy_from_slice(drums);
        }
    }
    let config = &models.dit_config;
    for fit in &mut fits {
        let at = fit.style.number() * stems;
        for s in 0..stems {
            fit.stem_shifts[s].1 = config.onset_shift_by_style[at + s];
            fit.stem_lifts[s].1 = config.rhythm_lift_by_style[at + s];
        }
        fit.drum_shifts =
            config.drum_shift_by_style[fit.style.number() * classes..][..classes].to_vec();
    }
    models.dit_config.validate()?;
    Ok(fits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset;

    fn rounds(rounds: usize, fit_lifts: Option<LiftStems>, hold_within_errors: f64) -> SongRounds {
        SongRounds {
            rounds,
            fit_lifts,
            lift_below: GrooveMark::Median,
            hold_within_errors,
            match_polyphony: None,
        }
    }

    /// A figure whose log density grows by `slope` per logit from `base` at shift 0.
    fn measure(base: f64, slope: f64, shift: f32) -> f64 {
        base * (slope * f64::from(shift)).exp()
    }

    #[test]
    fn the_search_closes_on_the_target_and_keeps_the_closest_tried() {
        for (base, slope, target) in [(6.0, 1.0, 4.0), (2.0, 0.4, 3.0), (10.0, 2.5, 9.0)] {
            let mut search = ValueSearch::density(target);
            let mut shift = search.next(0.3);
            assert_eq!(shift, 0.3, "the first round tries the start");
            for _ in 0..4 {
                search.tried.push((shift, measure(base, slope, shift)));
                shift = search.next(0.3);
            }
            let best = search.best(0.3);
            let reached = measure(base, slope, best);
            assert!(
                (reached / target - 1.0).abs() < 0.02,
                "{base} {slope} {target}: {reached} at {best}"
            );
            assert!(search.tried.iter().any(|&(s, _)| s == best));
        }
    }

    #[test]
    fn steps_are_bounded_and_a_silent_figure_is_pushed_up() {
        let mut search = ValueSearch::density(5.0);
        search.tried.push((0.0, 0.0));
        assert_eq!(search.next(0.0), MAX_STEP as f32);
        // A figure that did not move takes the longest step.
        search.tried.push((1.5, 0.0));
        assert_eq!(search.next(0.0), 1.5 + MAX_STEP as f32);
        // Noise that makes the slope look negative falls back to the prior.
        let mut noisy = ValueSearch::density(5.0);
        noisy.tried = vec![(0.0, 2.0), (1.0, 1.0)];
        assert!((noisy.next(0.0) - (1.0 + 5f32.ln() / SLOPE_PRIOR as f32)).abs() < 1e-5);
        let mut near = ValueSearch::density(1.0);
        near.tried.push((7.9, 0.5));
        assert_eq!(near.next(0.0), MAX_SONG_SHIFT);
        assert_eq!(ValueSearch::density(1.0).best(0.7), 0.7);
    }

    #[test]
    fn a_groove_search_steps_linearly_and_keeps_lifts_in_bounds() {
        // Groove rising 0.04 per logit of lift from 0.6: the target 0.8 lies at lift 5.
        let groove = |lift: f32| (0.6 + 0.04 * f64::from(lift)).min(1.0);
        let mut search = ValueSearch::groove(0.8, 0.0);
        let mut lift = search.next(1.0);
        for _ in 0..5 {
            search.tried.push((lift, groove(lift)));
            lift = search.next(1.0);
        }
        assert!((search.best(1.0) - 5.0).abs() < 0.05, "{:?}", search.tried);
        // The first step follows the prior, at most MAX_STEP.
        let mut first = ValueSearch::groove(0.7, 0.0);
        first.tried.push((2.0, 0.69));
        assert!((first.next(0.0) - (2.0 + (0.01 / GROOVE_SLOPE_PRIOR) as f32)).abs() < 1e-5);
        // Too much groove at no lift: the lift stays at 0; never past MAX_SONG_LIFT.
        let mut loose = ValueSearch::groove(0.3, 0.0);
        loose.tried.push((0.0, 0.5));
        assert_eq!(loose.next(0.0), 0.0);
        // Nor below its floor (the lift it started from).
        let mut floored = ValueSearch::groove(0.3, 2.0);
        floored.tried.push((3.0, 0.5));
        assert_eq!(floored.next(0.0), 2.0);
        let mut tight = ValueSearch::groove(0.95, 0.0);
        tight.tried.push((11.5, 0.5));
        assert_eq!(tight.next(0.0), MAX_SONG_LIFT);
    }

    #[test]
    fn densities_count_notes_per_bar_per_stem_and_drum_class() {
        let pieces = dataset::own_song_pieces(1);
        let piece = &pieces[0];
        let song = piece.to_song();
        let density = SongMeasures::of(&song);
        for (s, stem) in Stem::ALL.iter().enumerate() {
            let notes = song.stems.iter().find(|t| t.stem == *stem);
            assert_eq!(
                density.stems[s],
                notes.map(|t| t.notes.len() as f64 / f64::from(song.bars))
            );
        }
        let classes = density.drum_classes.clone().expect("own songs have drums");
        let drums = density.stems[Stem::ALL.iter().position(|&s| s == Stem::Drums).unwrap()];
        assert!((classes.iter().sum::<f64>() - drums.unwrap()).abs() < 1e-9);
        for (s, stem) in Stem::ALL.iter().enumerate() {
            let expected = song.stems.iter().find(|t| t.stem == *stem).and_then(|t| {
                let (sum, pairs) =
                    rhythm::groove_sum(&t.notes, song.bars, song.meter.steps_per_bar());
                (pairs > 0).then(|| sum / pairs as f64)
            });
            assert_eq!(density.grooves[s], expected);
        }
        let (sum, pairs) = song.stems.iter().fold((0.0, 0), |(sum, pairs), t| {
            let (s, p) = rhythm::groove_sum(&t.notes, song.bars, song.meter.steps_per_bar());
            (sum + s, pairs + p)
        });
        assert_eq!(
            density.groove,
            Some(sum / pairs as f64),
            "over every stem's pairs"
        );
        assert!(
            density
                .grooves
                .iter()
                .flatten()
                .all(|g| (0.0..=1.0).contains(g))
        );
        assert!(density.grooves.iter().any(Option::is_some));
        let figures = StyleFigures::of(&[density.clone(), density.clone(), density.clone()]);
        assert_eq!(figures.notes_per_bar, density.stems, "the median of equals");
        assert_eq!(figures.grooves, density.grooves);
        assert_eq!(figures.groove, density.groove);
        for (mean, one) in figures.drum_classes.expect("a kit").iter().zip(&classes) {
            assert!((mean - one).abs() < 1e-9);
        }
        let none = StyleFigures::of(&[]);
        assert_eq!(none.notes_per_bar, vec![None; Stem::ALL.len()]);
        assert_eq!(none.grooves, vec![None; Stem::ALL.len()]);
        assert_eq!(none.groove, None);
        assert_eq!(none.drum_classes, None);
        assert_eq!(median(&[1.0, 2.0, 4.0, 8.0]), Some(3.0));
        // Equal songs measure without error.
        assert!(
            figures
                .notes_per_bar_errors
                .iter()
                .flatten()
                .all(|&e| e == 0.0)
        );
        assert!(
            figures
                .drum_class_errors
                .expect("a kit")
                .iter()
                .all(|&e| e < 1e-9)
        );
        assert_eq!(none.notes_per_bar_errors, vec![None; Stem::ALL.len()]);
    }

    #[test]
    fn a_median_error_follows_the_spread_and_the_count() {
        assert_eq!(median_error(&[3.0], |x| x), None);
        // 16 values: ranks 8 ± 2, half of (x[10] - x[6]).
        let even: Vec<f64> = (0..16).map(f64::from).collect();
        assert_eq!(median_error(&even, |x| x), Some(2.0));
        assert_eq!(
            median_error(&even, |x| 3.0 * x),
            Some(6.0),
            "in the unit given"
        );
        // Four times the songs halve it, as a standard error.
        let more: Vec<f64> = (0..64).map(|i| f64::from(i) / 4.0).collect();
        assert_eq!(median_error(&more, |x| x), Some(1.0));
        // Near a normal's: 1.2533 sigma / sqrt(n), here for 400 evenly spaced quantiles.
        let normal: Vec<f64> = (0..400)
            .map(|i| probit((f64::from(i) + 0.5) / 400.0))
            .collect();
        let error = median_error(&normal, |x| x).unwrap();
        assert!((error / (1.2533 / 20.0) - 1.0).abs() < 0.05, "{error}");
    }

    /// The standard normal's quantile, by bisection of its distribution (erf-free).
    fn probit(p: f64) -> f64 {
        let cdf = |x: f64| {
            // Simpson's rule over the density from 0 to x.
            let n = 200;
            let h = x / f64::from(n);
            let f = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let sum: f64 = (0..=n)
                .map(|i| {
                    let w = if i == 0 || i == n {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    w * f(f64::from(i) * h)
                })
                .sum();
            0.5 + sum * h / 3.0
        };
        let (mut low, mut high) = (-6.0, 6.0);
        for _ in 0..60 {
            let middle = 0.5 * (low + high);
            if cdf(middle) < p {
                low = middle;
            } else {
                high = middle;
            }
        }
        0.5 * (low + high)
    }

    #[test]
    fn a_polyphony_aim_lands_the_shift_between_the_density_and_the_polyphony() {
        // Density 8.9 at shift 0, 0.05 log per logit (target 8.68: shift -0.5); polyphony
        // 2.9 at shift 0, 0.1 per logit (target 3.4: shift 5).
        let density = |shift: f32| 8.9 * (0.05 * f64::from(shift)).exp();
        let polyphony = |shift: f32| 2.9 + 0.1 * f64::from(shift);
        let aim = PolyphonyAim {
            target: 3.4,
            spread: 1.0,
            density_spread: 0.3,
            measured: Vec::new(),
        };
        let run = |aim: Option<PolyphonyAim>| {
            let mut search = ValueSearch {
                polyphony: aim,
                ..ValueSearch::density(8.68)
            };
            let mut shift = search.next(0.0);
            for _ in 0..6 {
                search.tried.push((shift, density(shift)));
                if let Some(aim) = &mut search.polyphony {
                    aim.measured.push(polyphony(shift));
                }
                shift = search.next(0.0);
            }
            // A round's weighed gap counts the polyphony's in the density's units.
            let last = search.tried.len() - 1;
            let (log_gap, polyphony_gap) = (
                (8.68f64 / search.tried[last].1).ln(),
                search.polyphony.as_ref().map_or(0.0, |aim| {
                    (aim.target - aim.measured[last]) / aim.spread * aim.density_spread
                }),
            );
            let weighed = search.weighted_round_gap(last);
            assert!((weighed - log_gap.hypot(polyphony_gap) / 0.1).abs() < 1e-9);
            search.best(0.0)
        };
        let alone = run(None);
        assert!((alone + 0.5).abs() < 0.1, "the density alone: {alone}");
        // Least squares in spreads: gaps (ln 8.68 - ln 8.9 - 0.05 x) / 0.3 and
        // (0.5 - 0.1 x) / 1 vanish together at x = (0.167 * -0.0837 + 0.1 * 0.5) / 0.0378.
        let both = run(Some(aim));
        let expected = (0.05 / 0.3 * ((8.68f64 / 8.9).ln() / 0.3) + 0.1 * 0.5)
            / ((0.05f64 / 0.3).powi(2) + 0.01);
        assert!(
            alone < both && both < 5.0 && (f64::from(both) - expected).abs() < 0.3,
            "{both} against {expected}"
        );
    }

    #[test]
    fn polyphony_is_aimed_at_only_where_the_pieces_vary_it() {
        let piece = |chords: f64, lead: f64| SongMeasures {
            stems: vec![Some(10.0), Some(2.0), Some(chords * 2.0), Some(5.0), None],
            polyphony: vec![
                Some(chords / 2.0),
                Some(1.0),
                Some(chords),
                Some(lead),
                None,
            ],
            ..SongMeasures::default()
        };
        let pieces = [
            piece(3.0, 1.0),
            piece(3.0, 1.0),
            piece(4.0, 1.0),
            piece(4.0, 1.0),
        ];
        let aims = polyphony_aims(&pieces, Centre::Median);
        let chords = Stem::ALL.iter().position(|&s| s == Stem::Chords).unwrap();
        let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums).unwrap();
        for (s, aim) in aims.iter().enumerate() {
            assert_eq!(aim.is_some(), s == chords, "{s}: {aim:?}");
        }
        let aim = aims[chords].as_ref().unwrap();
        assert_eq!(aim.target, 3.5);
        // Three pieces of triads and one of sevenths: the median on the triads, the mean not.
        let skewed = [
            piece(3.0, 1.0),
            piece(3.0, 1.0),
            piece(3.0, 1.0),
            piece(4.0, 1.0),
        ];
        let median = polyphony_aims(&skewed, Centre::Median);
        let mean = polyphony_aims(&skewed, Centre::Mean);
        assert_eq!(median[chords].as_ref().unwrap().target, 3.0);
        assert_eq!(mean[chords].as_ref().unwrap().target, 3.25);
        assert_eq!(aim.spread, 1.0);
        assert!((aim.density_spread - (8.0f64 / 6.0).ln()).abs() < 1e-9);
        // Drums vary too, but their classes have their own shifts.
        assert!(aims[drums].is_none());
    }

    #[test]
    fn a_search_holds_its_value_while_the_songs_lie_within_tolerance() {
        let mut search = ValueSearch::density(8.68);
        search.tried.push((0.93, 8.92));
        // 2.7 % over: within a tolerance of 4 % (log), held; with none, stepped.
        search.tolerances.push(0.04);
        assert_eq!(search.next(0.0), 0.93);
        search.tolerances[0] = 0.0;
        assert!(search.next(0.0) < 0.93);
        // Past the tolerance it steps as before.
        let mut far = ValueSearch::density(8.68);
        far.tried.push((0.93, 10.0));
        far.tolerances.push(0.04);
        let mut untolerant = far.clone();
        untolerant.tolerances[0] = 0.0;
        assert_eq!(far.next(0.0), untolerant.next(0.0));
        assert!(far.next(0.0) < 0.93);
        // Groove in its own units.
        let mut groove = ValueSearch::groove(0.80, 0.0);
        groove.tried.push((1.0, 0.79));
        groove.tolerances.push(0.02);
        assert_eq!(groove.next(0.0), 1.0);
    }

    #[test]
    fn rounds_write_songs_and_store_the_closest_shifts_tried() {
        let mut models = crate::writer::tests::tiny_models();
        let pieces: Vec<Piece> = dataset::own_song_pieces(1)
            .into_iter()
            .filter(|p| matches!(p.style, Style::Rock | Style::Ambient))
            .collect();
        let data = SongDensityData::of(&pieces, 1, 0);
        let settings = WriterSettings {
            sampler: crate::model::sampler::SamplerSettings {
                steps: 1,
                ..Default::default()
            },
            ..WriterSettings::default()
        };
        let mut written = 0;
        let fits = fit_song_density(
            &mut models,
            &data,
            &settings,
            rounds(2, Some(LiftStems::All), 0.0),
            &mut |n| written = n,
        )
        .unwrap();
        assert_eq!(
            written,
            2 * data.requests.values().map(Vec::len).sum::<usize>()
        );
        assert_eq!(fits.len(), data.densities.len());
        assert!(
            fits.iter()
                .any(|f| f.style == Style::Rock && !f.drum_classes.is_empty())
        );
        let config = &models.dit_config;
        assert_eq!(
            config.onset_shift_by_style.len(),
            Style::ALL.len() * Stem::ALL.len()
        );
        assert_eq!(
            config.drum_shift_by_style.len(),
            Style::ALL.len() * DrumClass::ALL.len()
        );
        for fit in &fits {
            // A style whose lifts were fitted keeps the round that came closest, all values
            // from that round; any other each value's closest.
            assert_eq!(fit.round_gaps.len(), 2);
            let kept = fit.kept_round.expect("rounds written");
            assert!(fit.round_gaps.iter().all(|&g| g >= fit.round_gaps[kept]));
            let lifted = fit.lifts.iter().any(Option::is_some);
            let kept_of = |search: &ValueSearch| match lifted {
                true => search.tried[kept].0,
                false => search.best(f32::NAN),
            };
            for (s, search) in fit.stems.iter().enumerate() {
                let stored = config.onset_shift_of(fit.style, s);
                assert_eq!(fit.stem_shifts[s].1, stored);
                match search {
                    Some(search) => {
                        assert_eq!(search.tried.len(), 2);
                        assert_eq!(search.tried[0].0, fit.stem_shifts[s].0, "starts as stored");
                        assert_eq!(stored, kept_of(search));
                    }
                    None => assert_eq!(stored, fit.stem_shifts[s].0, "left as it was"),
                }
            }
            for (s, search) in fit.lifts.iter().enumerate() {
                let stored = config.rhythm_lift_of(fit.style, s);
                assert_eq!(fit.stem_lifts[s].1, stored);
                match search {
                    Some(search) => {
                        assert_eq!(search.figure, Figure::Groove);
                        assert_eq!(search.tried[0].0, fit.stem_lifts[s].0, "starts as stored");
                        if let Some(&(lift, _)) = search.tried.get(kept) {
                            assert_eq!(stored, lift);
                        }
                    }
                    None => assert_eq!(stored, fit.stem_lifts[s].0, "left as it was"),
                }
            }
            for (c, search) in fit.drum_classes.iter().enumerate() {
                assert_eq!(config.drum_shift_of(fit.style, c), kept_of(search));
            }
        }
        assert!(fits.iter().any(|f| f.lifts.iter().any(Option::is_some)));
        for fit in &fits {
            let (pieces, first) = fit.groove;
            assert!(pieces.is_some(), "{fit:?}");
            assert_eq!(fit.lift_bar, pieces);
            // Lifts are searched only where the first songs are looser than the pieces (or
            // silent: the tiny models write few notes).
            assert_eq!(
                fit.lifts.iter().any(Option::is_some),
                first < pieces,
                "{:?}",
                fit.groove
            );
        }
        // Styles without pieces keep what they had.
        assert!(
            Style::ALL
                .iter()
                .filter(|s| !data.densities.contains_key(s))
                .all(|&s| (0..DrumClass::ALL.len()).all(|c| config.drum_shift_of(s, c) == 0.0))
        );
        // Fresh tiny models fitted with other rounds' settings.
        let fit_fresh = |rounds: SongRounds| {
            let mut models = crate::writer::tests::tiny_models();
            let fits = fit_song_density(&mut models, &data, &settings, rounds, &mut |_| {});
            (models, fits.unwrap())
        };
        // The same data and seeds give the same fit.
        let (_, refit) = fit_fresh(rounds(2, Some(LiftStems::All), 0.0));
        assert_eq!(refit, fits);
        // With the pitched stems' lifts only, the drums keep theirs.
        let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums).unwrap();
        assert!(fits.iter().any(|f| f.lifts[drums].is_some()), "{fits:?}");
        let (pitched, pitched_fits) = fit_fresh(rounds(2, Some(LiftStems::Pitched), 0.0));
        // Lifts gated at the pieces' lower quartile: only where the first songs fall below it.
        let (_, gated_fits) = fit_fresh(SongRounds {
            lift_below: GrooveMark::LowerQuartile,
            ..rounds(2, Some(LiftStems::All), 0.0)
        });
        for fit in &gated_fits {
            let measures = &data.densities[&fit.style];
            let mut grooves: Vec<f64> = measures.iter().filter_map(|m| m.groove).collect();
            assert_eq!(fit.lift_bar, Some(quartiles(&mut grooves)[0]));
            assert!(fit.lift_bar <= fit.groove.0);
            assert_eq!(
                fit.lifts.iter().any(Option::is_some),
                fit.groove.1 < fit.lift_bar,
                "{fit:?}"
            );
        }
        for (fit, lifted) in pitched_fits.iter().zip(&fits) {
            assert!(fit.lifts[drums].is_none(), "{fit:?}");
            assert_eq!(
                pitched.dit_config.rhythm_lift_of(fit.style, drums),
                fit.stem_lifts[drums].0
            );
            for s in (0..Stem::ALL.len()).filter(|&s| s != drums) {
                assert_eq!(fit.lifts[s].is_some(), lifted.lifts[s].is_some());
            }
        }
        // Without lifts fitted, the lifts stay as they were (none, in the tiny models).
        let (plain, kept) = fit_fresh(rounds(2, None, 0.0));
        assert!(kept.iter().all(|f| f.lifts.iter().all(Option::is_none)));
        // ...and each value keeps its own closest tried.
        for fit in &kept {
            for (s, search) in fit.stems.iter().enumerate() {
                if let Some(search) = search {
                    let stored = plain.dit_config.onset_shift_of(fit.style, s);
                    assert_eq!(stored, search.best(f32::NAN));
                }
            }
            for (c, search) in fit.drum_classes.iter().enumerate() {
                let stored = plain.dit_config.drum_shift_of(fit.style, c);
                assert_eq!(stored, search.best(f32::NAN));
            }
        }
        assert!(
            plain
                .dit_config
                .rhythm_lift_by_style
                .iter()
                .all(|&l| l == 0.0)
        );
        assert!(
            kept.iter()
                .flat_map(|f| f.stems.iter().flatten().chain(&f.drum_classes))
                .all(|search| search.tolerances.iter().all(|&t| t == 0.0)),
            "no hold asked, none set"
        );
    }

    #[test]
    fn rounds_hold_values_within_their_errors_and_record_aimed_polyphony() {
        let pieces: Vec<Piece> = dataset::own_song_pieces(2)
            .into_iter()
            .filter(|p| p.style == Style::Rock)
            .collect();
        let data = SongDensityData::of(&pieces, 3, 0);
        let settings = WriterSettings {
            sampler: crate::model::sampler::SamplerSettings {
                steps: 1,
                ..Default::default()
            },
            ..WriterSettings::default()
        };
        let mut models = crate::writer::tests::tiny_models();
        let fits = fit_song_density(
            &mut models,
            &data,
            &settings,
            rounds(2, None, 2.0),
            &mut |_| {},
        )
        .unwrap();
        let (mut held, mut stepped) = (0, 0);
        for search in fits
            .iter()
            .flat_map(|f| f.stems.iter().flatten().chain(&f.drum_classes))
        {
            assert_eq!(search.tolerances.len(), search.tried.len());
            let (first, measured) = search.tried[0];
            if search.gap(measured).abs() <= search.tolerances[0] {
                assert_eq!(search.tried[1].0, first, "{search:?}");
                held += 1;
            } else if search.tried[1].0 != first {
                stepped += 1;
            }
        }
        assert!(
            held > 0,
            "three songs of tiny models leave some value within its error"
        );
        assert!(stepped > 0, "and some outside");
        // With polyphony matched, every aimed search records it each round.
        let mut aiming = crate::writer::tests::tiny_models();
        let matched = SongRounds {
            match_polyphony: Some(Centre::Median),
            ..rounds(2, None, 0.0)
        };
        // Rock's own songs play fixed voices: let its pieces' chords vary between 3 and 4.
        let mut data = data;
        let chords = Stem::ALL.iter().position(|&s| s == Stem::Chords).unwrap();
        for (i, piece) in data
            .densities
            .get_mut(&Style::Rock)
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            piece.polyphony[chords] = Some(3.0 + (i % 2) as f64);
        }
        let fits = fit_song_density(&mut aiming, &data, &settings, matched, &mut |_| {}).unwrap();
        let aims = polyphony_aims(&data.densities[&Style::Rock], Centre::Median);
        assert!(aims[chords].is_some());
        for (search, aim) in fits[0].stems.iter().zip(&aims) {
            if let Some(search) = search {
                assert_eq!(search.polyphony.is_some(), aim.is_some());
                if let Some(aimed) = &search.polyphony {
                    assert_eq!(aimed.measured.len(), search.tried.len());
                }
            }
        }
    }

    #[test]
    fn requests_follow_training_pieces_only_spread_over_each_style() {
        let mut pieces = dataset::own_song_pieces(2);
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.split = if i % 3 == 0 {
                Split::Validation
            } else {
                Split::Train
            };
        }
        let data = SongDensityData::of(&pieces, 2, 7);
        let trained = pieces.iter().filter(|p| p.split == Split::Train);
        assert_eq!(
            data.densities.values().map(Vec::len).sum::<usize>(),
            trained.clone().count()
        );
        for (style, requests) in &data.requests {
            assert!(!requests.is_empty() && requests.len() <= 2);
            for request in requests {
                assert_eq!(request.style, Some(*style));
                assert!(trained.clone().any(|p| p.style == *style
                    && Some(p.bars) == request.bars
                    && Some(p.meter) == request.meter));
            }
        }
    }
}
