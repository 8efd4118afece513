//! Density calibration on whole written songs. The window calibration
//! ([`crate::train::calibrate`]) matches each stem's onsets in sampled 8-bar windows to the
//! real windows', but a song is a chain of windows, each continuing from the bars written
//! before it, and along that chain some stems drift denser than the windows were fitted to
//! (and a drum kit's classes play in other proportions than the data's). This stage writes
//! songs per style (under requests like users', or training pieces' own: style, mood, tempo,
//! key, meter, length), compares them with the style's training pieces, and corrects, in a few
//! rounds, each pitched stem's onset shift until the median notes per bar per song match, and
//! each drum class's own shift (`DitConfig::drum_shift_by_style`) until its mean onsets per
//! bar match. Only training pieces are read: held-out pieces stay the evaluation's.

use crate::Error;
use crate::dataset::{self, Piece, Split};
use crate::generate;
use crate::music::{DrumClass, Song, Stem, Style};
use crate::plan::Request;
use crate::reasoning::Thinking;
use crate::writer::{Models, WriterSettings};
use burn::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

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

/// The search for one shift that brings one figure of written songs (a density, notes per
/// bar) to its target: Newton steps on log density, the slope measured between the last two
/// rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShiftSearch {
    pub target: f64,
    /// `(shift, measured)` of each round so far.
    pub tried: Vec<(f32, f64)>,
}

impl ShiftSearch {
    pub fn new(target: f64) -> ShiftSearch {
        ShiftSearch {
            target,
            tried: Vec::new(),
        }
    }

    /// How far `measured` lies from the target, in log density (positive: too thin).
    fn gap(&self, measured: f64) -> f64 {
        self.target.max(DENSITY_FLOOR).ln() - measured.max(DENSITY_FLOOR).ln()
    }

    /// The shift to try next (`start` when nothing was tried yet).
    pub fn next(&self, start: f32) -> f32 {
        let Some(&(shift, measured)) = self.tried.last() else {
            return start;
        };
        let slope = match self.tried.len().checked_sub(2).map(|i| self.tried[i]) {
            Some((before, measured_before)) if (shift - before).abs() > 1e-4 => {
                let slope =
                    (self.gap(measured_before) - self.gap(measured)) / f64::from(shift - before);
                // A figure that did not move calls for a longer step; one that moved the
                // wrong way is noise, and the prior stands.
                if slope >= 0.0 {
                    slope.clamp(SLOPE_RANGE.0, SLOPE_RANGE.1)
                } else {
                    SLOPE_PRIOR
                }
            }
            _ => SLOPE_PRIOR,
        };
        let step = (self.gap(measured) / slope).clamp(-MAX_STEP, MAX_STEP);
        (shift + step as f32).clamp(-MAX_SONG_SHIFT, MAX_SONG_SHIFT)
    }

    /// The tried shift whose songs came closest to the target (`start` when none was tried).
    pub fn best(&self, start: f32) -> f32 {
        self.tried
            .iter()
            .min_by(|a, b| self.gap(a.1).abs().total_cmp(&self.gap(b.1).abs()))
            .map_or(start, |&(shift, _)| shift)
    }
}

/// Per stem (in `Stem::ALL` order) notes per bar, and per drum class onsets per bar, of one
/// song or piece.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SongDensity {
    /// `None` for a stem the song does not have.
    pub stems: Vec<Option<f64>>,
    /// `None` when the song has no drum stem.
    pub drum_classes: Option<Vec<f64>>,
}

impl SongDensity {
    pub fn of(song: &Song) -> SongDensity {
        let bars = f64::from(song.bars.max(1));
        let track = |stem: Stem| song.stems.iter().find(|t| t.stem == stem);
        let stems = Stem::ALL
            .iter()
            .map(|&stem| track(stem).map(|t| t.notes.len() as f64 / bars))
            .collect();
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
        SongDensity {
            stems,
            drum_classes,
        }
    }
}

/// What a style's songs are compared on: the median over songs of each stem's notes per bar
/// (as `refrain evaluate dit` compares them), the mean of each drum class's.
pub fn density_figures(songs: &[SongDensity]) -> (Vec<Option<f64>>, Option<Vec<f64>>) {
    let stems = (0..Stem::ALL.len())
        .map(|s| {
            let mut values: Vec<f64> = songs.iter().filter_map(|d| d.stems[s]).collect();
            values.sort_by(f64::total_cmp);
            median(&values)
        })
        .collect();
    let kits: Vec<&Vec<f64>> = songs
        .iter()
        .filter_map(|d| d.drum_classes.as_ref())
        .collect();
    let classes = (!kits.is_empty()).then(|| {
        (0..DrumClass::ALL.len())
            .map(|c| kits.iter().map(|k| k[c]).sum::<f64>() / kits.len() as f64)
            .collect()
    });
    (stems, classes)
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

/// The training pieces' densities and the requests to write, per style.
#[derive(Clone, Debug, Default)]
pub struct SongDensityData {
    pub densities: BTreeMap<Style, Vec<SongDensity>>,
    pub requests: BTreeMap<Style, Vec<Request>>,
}

impl SongDensityData {
    /// Reads the training pieces of the dataset at `dir`: every one's densities, and per
    /// style the requests of `songs` of them spread evenly over the style's pieces (by id),
    /// each with its own seed drawn from `seed`.
    pub fn read(dir: &Path, songs: usize, seed: u64) -> Result<SongDensityData, Error> {
        let (manifest, _) = dataset::read_manifest(dir)?;
        let mut pieces = Vec::new();
        dataset::for_each_piece(dir, &manifest, |piece| {
            if piece.split == Split::Train {
                pieces.push(piece);
            }
            Ok(())
        })?;
        Ok(SongDensityData::of(&pieces, songs, seed))
    }

    /// The same from pieces in hand (training pieces only are read).
    pub fn of(pieces: &[Piece], songs: usize, seed: u64) -> SongDensityData {
        let mut data = SongDensityData::default();
        let mut by_style: BTreeMap<Style, Vec<&Piece>> = BTreeMap::new();
        for piece in pieces.iter().filter(|p| p.split == Split::Train) {
            data.densities
                .entry(piece.style)
                .or_default()
                .push(SongDensity::of(&piece.to_song()));
            by_style.entry(piece.style).or_default().push(piece);
        }
        for (style, mut pieces) in by_style {
            pieces.sort_by(|a, b| a.id.cmp(&b.id));
            let chosen = songs.min(pieces.len());
            let requests = (0..chosen)
                .map(|i| {
                    let piece = pieces[i * pieces.len() / chosen];
                    Request {
                        style: Some(piece.style),
                        mood: Some(piece.mood),
                        bpm: Some(piece.tempo_bpm),
                        key: Some(piece.key),
                        meter: Some(piece.meter),
                        bars: Some(piece.bars),
                        seed: seed ^ (0x50e6_0000 + i as u64),
                        ..Request::default()
                    }
                })
                .collect();
            data.requests.insert(style, requests);
        }
        data
    }
}

/// One style's fit: a search per pitched stem (`None`: the style's pieces lack the stem, or
/// it is the drums) and per drum class (empty: the style's pieces have no drums).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StyleSongFit {
    pub style: Style,
    pub stems: Vec<Option<ShiftSearch>>,
    /// The stems' shifts before this stage (the window calibration's) and after.
    pub stem_shifts: Vec<(f32, f32)>,
    pub drum_classes: Vec<ShiftSearch>,
    pub drum_shifts: Vec<f32>,
}

/// Fits, in `rounds` rounds of writing every style's requests in `data` with `settings`,
/// each style's pitched stems' onset shifts and drum classes' shifts so its songs match the
/// training pieces' densities (see the module doc), and stores the best tried in
/// `models.dit_config`. `progress` hears the songs written so far.
pub fn fit_song_density<B: Backend>(
    models: &mut Models<B>,
    data: &SongDensityData,
    settings: &WriterSettings,
    rounds: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<StyleSongFit>, Error> {
    let stems = Stem::ALL.len();
    let classes = DrumClass::ALL.len();
    let drums = Stem::ALL.iter().position(|&s| s == Stem::Drums);
    let config = &mut models.dit_config;
    config.onset_shift_by_style = Style::ALL
        .iter()
        .flat_map(|&style| (0..stems).map(move |s| (style, s)))
        .map(|(style, s)| config.onset_shift_of(style, s))
        .collect::<Vec<_>>();
    if config.drum_shift_by_style.is_empty() {
        config.drum_shift_by_style = vec![0.0; Style::ALL.len() * classes];
    }
    let mut fits: Vec<StyleSongFit> = Vec::new();
    for (&style, densities) in &data.densities {
        let (stem_targets, class_targets) = density_figures(densities);
        let number = style.number();
        let starts: Vec<f32> = config.onset_shift_by_style[number * stems..][..stems].to_vec();
        fits.push(StyleSongFit {
            style,
            stems: stem_targets
                .iter()
                .enumerate()
                .map(|(s, target)| target.filter(|_| Some(s) != drums).map(ShiftSearch::new))
                .collect(),
            stem_shifts: starts.iter().map(|&s| (s, s)).collect(),
            drum_classes: class_targets
                .unwrap_or_default()
                .into_iter()
                .map(ShiftSearch::new)
                .collect(),
            drum_shifts: config.drum_shift_by_style[number * classes..][..classes].to_vec(),
        });
    }
    let mut written = 0;
    for round in 0..=rounds {
        let last = round == rounds;
        for fit in &fits {
            let number = fit.style.number();
            for (s, search) in fit.stems.iter().enumerate() {
                if let Some(search) = search {
                    let start = fit.stem_shifts[s].0;
                    models.dit_config.onset_shift_by_style[number * stems + s] = if last {
                        search.best(start)
                    } else {
                        search.next(start)
                    };
                }
            }
            for (c, search) in fit.drum_classes.iter().enumerate() {
                let start = fit.drum_shifts[c];
                models.dit_config.drum_shift_by_style[number * classes + c] = if last {
                    search.best(start)
                } else {
                    search.next(start)
                };
            }
        }
        if last {
            break;
        }
        for fit in &mut fits {
            let number = fit.style.number();
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
                songs.push(SongDensity::of(&song.song));
                written += 1;
                progress(written);
            }
            let (stem_figures, class_figures) = density_figures(&songs);
            let config = &models.dit_config;
            for (s, search) in fit.stems.iter_mut().enumerate() {
                if let (Some(search), Some(measured)) = (search, stem_figures[s]) {
                    let shift = config.onset_shift_by_style[number * stems + s];
                    search.tried.push((shift, measured));
                }
            }
            for (c, search) in fit.drum_classes.iter_mut().enumerate() {
                if let Some(measured) = class_figures.as_ref().map(|f| f[c]) {
                    let shift = config.drum_shift_by_style[number * classes + c];
                    search.tried.push((shift, measured));
                }
            }
        }
    }
    for fit in &mut fits {
        let number = fit.style.number();
        for (s, shifts) in fit.stem_shifts.iter_mut().enumerate() {
            shifts.1 = models.dit_config.onset_shift_by_style[number * stems + s];
        }
        fit.drum_shifts =
            models.dit_config.drum_shift_by_style[number * classes..][..classes].to_vec();
    }
    models.dit_config.validate()?;
    Ok(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A figure whose log density grows by `slope` per logit from `base` at shift 0.
    fn measure(base: f64, slope: f64, shift: f32) -> f64 {
        base * (slope * f64::from(shift)).exp()
    }

    #[test]
    fn the_search_closes_on_the_target_and_keeps_the_closest_tried() {
        for (base, slope, target) in [(6.0, 1.0, 4.0), (2.0, 0.4, 3.0), (10.0, 2.5, 9.0)] {
            let mut search = ShiftSearch::new(target);
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
        let mut search = ShiftSearch::new(5.0);
        search.tried.push((0.0, 0.0));
        assert_eq!(search.next(0.0), MAX_STEP as f32);
        // A figure that did not move takes the longest step.
        search.tried.push((1.5, 0.0));
        assert_eq!(search.next(0.0), 1.5 + MAX_STEP as f32);
        // Noise that makes the slope look negative falls back to the prior.
        let mut noisy = ShiftSearch::new(5.0);
        noisy.tried = vec![(0.0, 2.0), (1.0, 1.0)];
        assert!((noisy.next(0.0) - (1.0 + 5f32.ln() / SLOPE_PRIOR as f32)).abs() < 1e-5);
        let mut near = ShiftSearch::new(1.0);
        near.tried.push((7.9, 0.5));
        assert_eq!(near.next(0.0), MAX_SONG_SHIFT);
        assert_eq!(ShiftSearch::new(1.0).best(0.7), 0.7);
    }

    #[test]
    fn densities_count_notes_per_bar_per_stem_and_drum_class() {
        let pieces = dataset::own_song_pieces(1);
        let piece = &pieces[0];
        let song = piece.to_song();
        let density = SongDensity::of(&song);
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
        let (stems, kit) = density_figures(&[density.clone(), density.clone(), density.clone()]);
        assert_eq!(stems, density.stems, "the median of equals");
        for (mean, one) in kit.expect("a kit").iter().zip(&classes) {
            assert!((mean - one).abs() < 1e-9);
        }
        assert_eq!(density_figures(&[]), (vec![None; Stem::ALL.len()], None));
        assert_eq!(median(&[1.0, 2.0, 4.0, 8.0]), Some(3.0));
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
        let fits =
            fit_song_density(&mut models, &data, &settings, 2, &mut |n| written = n).unwrap();
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
            for (s, search) in fit.stems.iter().enumerate() {
                let stored = config.onset_shift_of(fit.style, s);
                assert_eq!(fit.stem_shifts[s].1, stored);
                match search {
                    Some(search) => {
                        assert_eq!(search.tried.len(), 2);
                        assert_eq!(search.tried[0].0, fit.stem_shifts[s].0, "starts as stored");
                        assert_eq!(stored, search.best(0.0));
                    }
                    None => assert_eq!(stored, fit.stem_shifts[s].0, "left as it was"),
                }
            }
            for (c, search) in fit.drum_classes.iter().enumerate() {
                assert_eq!(config.drum_shift_of(fit.style, c), search.best(0.0));
            }
        }
        // Styles without pieces keep what they had.
        assert!(
            Style::ALL
                .iter()
                .filter(|s| !data.densities.contains_key(s))
                .all(|&s| (0..DrumClass::ALL.len()).all(|c| config.drum_shift_of(s, c) == 0.0))
        );
        // The same data and seeds give the same fit.
        let mut again = crate::writer::tests::tiny_models();
        let refit = fit_song_density(&mut again, &data, &settings, 2, &mut |_| {}).unwrap();
        assert_eq!(refit, fits);
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
