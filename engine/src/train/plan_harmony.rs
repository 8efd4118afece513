//! Fits, per style, how the chord labeller labels the plans the models are told
//! (`plan::corpus_harmony`), on the training pieces only.
//!
//! The corpus's pieces carry chords labelled from their tunes' melodies
//! (`harmony::Labelling::CORPUS`). A plan's chords are labelled the same way from the
//! planner's melody, which wanders more than a folk tune: labelled as the corpus was, the
//! plans' chords range over more roots than the pieces' (chiptune 1.61 bits of root entropy
//! against 1.23 at the pieces' own lengths) and change more often, and since the bass plays
//! roots and the other stems chord tones, the written songs' pitch-class entropy sits above
//! the pieces'. Raising the change penalty alone brings the roots in only by slowing the
//! harmony to a third of the pieces' changes; a stronger preference for the primary chords
//! brings them in at the pieces' pace. So for each style this plans the training pieces' own
//! requests (tempo, key, meter, mood and length, fresh seeds), labels each plan at every
//! point of [`labelling_grid`] and keeps the labelling whose plans lie nearest the pieces:
//! the summed distance of the root-entropy quartiles (bits) and of the median chord changes
//! per bar, the first in grid order (lowest weight, then lowest penalty) on a tie.

use crate::Error;
use crate::dataset::{Piece, Split};
use crate::harmony::{Labelling, root_entropy};
use crate::music::{ChordTrack, Style};
use crate::plan;
use serde::Serialize;
use std::collections::BTreeMap;

/// The labellings tried, weight by weight: prior weights 1 (the corpus's) to 6 in steps of
/// 0.5, each with change penalties 0.25 (the corpus's) to 1.5 in steps of 0.05. At weight 1
/// and penalty 1.5 chiptune's and folk's plans already keep one chord, and at weight 5 most
/// styles' do by penalty 0.75, so the grid spans every useful point.
pub fn labelling_grid() -> Vec<Labelling> {
    let mut grid = Vec::new();
    for weight in 0..=10 {
        for penalty in 0..=25 {
            grid.push(Labelling {
                change_penalty: Labelling::CORPUS.change_penalty + 0.05 * penalty as f32,
                prior_weight: Labelling::CORPUS.prior_weight + 0.5 * weight as f32,
            });
        }
    }
    grid
}

/// Lower quartile, median and upper quartile (linear between ranks); NaN for none.
pub fn quartiles(values: &mut [f64]) -> [f64; 3] {
    if values.is_empty() {
        return [f64::NAN; 3];
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let x = q * (values.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        values[lo] + (values[hi] - values[lo]) * (x - lo as f64)
    };
    [at(0.25), at(0.5), at(0.75)]
}

/// The harmony of a set of chord tracks: quartiles of the root entropy (bits), median chord
/// changes per bar, and the share with a single root.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HarmonyFigures {
    pub root_entropy: [f64; 3],
    pub changes_per_bar: f64,
    pub one_root_share: f64,
}

impl HarmonyFigures {
    /// Over `tracks`, each with its bar count.
    pub fn of<'a>(tracks: impl IntoIterator<Item = (&'a ChordTrack, u32)>) -> HarmonyFigures {
        let (mut entropies, mut changes) = (Vec::new(), Vec::new());
        for (track, bars) in tracks {
            entropies.push(root_entropy(&track.per_beat));
            changes.push(track.changes() as f64 / f64::from(bars.max(1)));
        }
        let one_root = entropies.iter().filter(|&&e| e < 1e-9).count();
        let share = one_root as f64 / entropies.len().max(1) as f64;
        HarmonyFigures {
            root_entropy: quartiles(&mut entropies),
            changes_per_bar: quartiles(&mut changes)[1],
            one_root_share: share,
        }
    }

    /// Summed distance of the root-entropy quartiles and of the chord changes per bar from
    /// `target`'s.
    pub fn distance(&self, target: &HarmonyFigures) -> f64 {
        let quartiles: f64 = self
            .root_entropy
            .iter()
            .zip(&target.root_entropy)
            .map(|(a, b)| (a - b).abs())
            .sum();
        quartiles + (self.changes_per_bar - target.changes_per_bar).abs()
    }
}

/// One style's fit.
#[derive(Clone, Debug, Serialize)]
pub struct StylePlanHarmony {
    pub style: Style,
    /// Training pieces of the style, and plans written for it.
    pub pieces: usize,
    pub plans: usize,
    pub pieces_figures: HarmonyFigures,
    /// The plans' labelled as the corpus was, and as chosen.
    pub corpus_figures: HarmonyFigures,
    pub chosen_figures: HarmonyFigures,
    pub labelling: Labelling,
    /// Each tried labelling with its plans' figures and their distance from the pieces'.
    pub tried: Vec<(Labelling, HarmonyFigures, f64)>,
}

/// The fit over every style with training pieces (in `Style::ALL` order), and the table to
/// store (`DitConfig::plan_labelling_by_style`): a style without training pieces keeps the
/// corpus's labelling.
#[derive(Clone, Debug, Serialize)]
pub struct PlanHarmonyFit {
    pub styles: Vec<StylePlanHarmony>,
    pub labelling_by_style: Vec<Labelling>,
}

/// Fits each style's labelling on `pieces` (training pieces only are read): `plans_per_style`
/// plans asked for what the style's pieces are, spread evenly over them (by id, cycling with
/// fresh seeds when there are fewer pieces), each with a seed drawn from `seed`. With no plans
/// every style keeps the corpus's labelling.
pub fn fit_plan_harmony(
    pieces: &[Piece],
    plans_per_style: usize,
    seed: u64,
) -> Result<PlanHarmonyFit, Error> {
    let mut by_style: BTreeMap<Style, Vec<&Piece>> = BTreeMap::new();
    for piece in pieces.iter().filter(|p| p.split == Split::Train) {
        by_style.entry(piece.style).or_default().push(piece);
    }
    let grid = labelling_grid();
    let mut fit = PlanHarmonyFit {
        styles: Vec::new(),
        labelling_by_style: vec![Labelling::CORPUS; Style::ALL.len()],
    };
    if plans_per_style == 0 {
        return Ok(fit);
    }
    for (style, mut pieces) in by_style {
        pieces.sort_by(|a, b| a.id.cmp(&b.id));
        let pieces_figures = HarmonyFigures::of(pieces.iter().map(|p| (&p.chords, p.bars)));
        let mut sheets = Vec::with_capacity(plans_per_style);
        for i in 0..plans_per_style {
            let piece = pieces[i * pieces.len() / plans_per_style];
            let request = piece.request(seed ^ (0x4a12_0000 + i as u64));
            sheets.push(plan::unlabelled_plan_for_models(&request)?.1);
        }
        let figures_at = |labelling: Labelling| {
            let labelled: Vec<_> = sheets
                .iter()
                .map(|sheet| (plan::corpus_chords(sheet, labelling), sheet.bars))
                .collect();
            HarmonyFigures::of(labelled.iter().map(|(c, b)| (c, *b)))
        };
        let mut tried = Vec::with_capacity(grid.len());
        let mut best: Option<(Labelling, f64, HarmonyFigures)> = None;
        for &labelling in &grid {
            let figures = figures_at(labelling);
            let distance = figures.distance(&pieces_figures);
            // Strictly nearer only: a tie keeps the earlier labelling.
            if best.as_ref().is_none_or(|(_, d, _)| distance < *d - 1e-12) {
                best = Some((labelling, distance, figures.clone()));
            }
            tried.push((labelling, figures, distance));
        }
        let (labelling, _, chosen_figures) = best.expect("the grid is not empty");
        fit.labelling_by_style[style.number()] = labelling;
        fit.styles.push(StylePlanHarmony {
            style,
            pieces: pieces.len(),
            plans: sheets.len(),
            pieces_figures,
            corpus_figures: figures_at(Labelling::CORPUS),
            chosen_figures,
            labelling,
            tried,
        });
    }
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{Chord, ChordQuality, Key, Meter, Mode, Mood};

    fn track(roots: &[u8]) -> ChordTrack {
        ChordTrack {
            per_beat: roots
                .iter()
                .map(|&r| Chord::new(r, ChordQuality::Major))
                .collect(),
        }
    }

    #[test]
    fn figures_count_roots_changes_and_one_root_tracks() {
        let one = track(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let two = track(&[0, 0, 0, 0, 5, 5, 5, 5]);
        let four = track(&[0, 0, 5, 5, 7, 7, 9, 9]);
        let figures = HarmonyFigures::of([(&one, 2), (&two, 2), (&four, 2)]);
        assert_eq!(figures.root_entropy, [0.5, 1.0, 1.5]);
        assert_eq!(figures.changes_per_bar, 0.5);
        assert!((figures.one_root_share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(figures.distance(&figures), 0.0);
        let other = HarmonyFigures::of([(&two, 2)]);
        assert_eq!(figures.distance(&other), 0.5 + 0.0 + 0.5 + 0.0);
        let other = HarmonyFigures::of([(&two, 1)]);
        assert_eq!(figures.distance(&other), 0.5 + 0.0 + 0.5 + 0.5);
    }

    #[test]
    fn the_grid_starts_at_the_corpus_labelling() {
        let grid = labelling_grid();
        assert_eq!(grid[0], Labelling::CORPUS);
        assert_eq!(grid.len(), 11 * 26);
        let last = grid.last().unwrap();
        assert!((last.change_penalty - 1.5).abs() < 1e-6);
        assert!((last.prior_weight - 6.0).abs() < 1e-6);
        assert!(grid.iter().all(Labelling::is_valid));
    }

    fn piece(style: Style, id: usize, split: Split, roots: &[u8]) -> Piece {
        Piece {
            id: format!("{id:04}"),
            split,
            source: "test".into(),
            licence: "CC0-1.0".into(),
            style,
            mood: Mood::Calm,
            tempo_bpm: 100.0,
            meter: Meter::FourFour,
            key: Key::new(2, Mode::Major),
            bars: (roots.len() / 4) as u32,
            sections: Vec::new(),
            chords: track(roots),
            stems: Vec::new(),
        }
    }

    #[test]
    fn pieces_on_one_chord_ask_for_a_firm_labelling_and_wandering_ones_for_the_corpus_one() {
        let mut pieces = Vec::new();
        for i in 0..6 {
            pieces.push(piece(Style::Ambient, i, Split::Train, &[0; 64]));
            let wandering: Vec<u8> = (0..64)
                .map(|b| [0, 2, 4, 5, 7, 9, 11][(b / 2) % 7])
                .collect();
            pieces.push(piece(Style::Rock, 10 + i, Split::Train, &wandering));
            // Held-out pieces are never read.
            pieces.push(piece(Style::Rock, 20 + i, Split::Validation, &[0; 64]));
        }
        let fit = fit_plan_harmony(&pieces, 8, 1).unwrap();
        let styles: Vec<Style> = fit.styles.iter().map(|s| s.style).collect();
        assert_eq!(styles, [Style::Rock, Style::Ambient]);
        let by_style = &fit.labelling_by_style;
        assert_eq!(by_style.len(), Style::ALL.len());
        let rock = &fit.styles[0];
        assert_eq!(rock.labelling, Labelling::CORPUS);
        assert!(rock.pieces_figures.root_entropy[1] > rock.chosen_figures.root_entropy[1]);
        let ambient = &fit.styles[1];
        assert_ne!(ambient.labelling, Labelling::CORPUS);
        assert_eq!(ambient.chosen_figures.root_entropy, [0.0; 3], "{ambient:?}");
        assert!(ambient.corpus_figures.root_entropy[1] > 0.5, "{ambient:?}");
        assert_eq!(ambient.plans, 8);
        assert_eq!(ambient.tried.len(), labelling_grid().len());
        assert_eq!(by_style[Style::Ambient.number()], ambient.labelling);
        assert_eq!(by_style[Style::Jazz.number()], Labelling::CORPUS);
        // Deterministic.
        let again = fit_plan_harmony(&pieces, 8, 1).unwrap();
        assert_eq!(again.labelling_by_style, fit.labelling_by_style);
    }
}
