//! Chord labelling: infers one chord per beat (or per half bar) from a melody and its key,
//! so that public-domain tunes, which carry no harmony, can be arranged.
//!
//! Each window of the harmonic rhythm is scored against the key's diatonic chords by the
//! melody notes sounding in it (longer and metrically stronger notes count more), and a
//! Viterbi pass over the windows picks the progression that balances fit against smooth,
//! functional motion (V->I, IV->V, ii->V ...), starting and ending on the tonic where it can.

use crate::music::{Chord, ChordQuality, ChordTrack, Key, Meter, Mode, Note};
use serde::{Deserialize, Serialize};

/// How often the harmony may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HarmonicRhythm {
    PerBeat,
    PerHalfBar,
    PerBar,
}

impl HarmonicRhythm {
    /// The harmonic rhythm the corpus's tunes are labelled with: two chords a bar in 4/4,
    /// one in 3/4, one per dotted quarter in 6/8.
    pub fn corpus(meter: Meter) -> HarmonicRhythm {
        match meter {
            Meter::FourFour => HarmonicRhythm::PerHalfBar,
            Meter::ThreeFour => HarmonicRhythm::PerBar,
            Meter::SixEight => HarmonicRhythm::PerBeat,
        }
    }

    /// Felt beats in one window. A half bar of 3/4 cannot be split evenly, so it is the bar.
    fn beats_per_window(self, meter: Meter) -> u32 {
        let beats = meter.beats_per_bar();
        match self {
            HarmonicRhythm::PerBeat => 1,
            HarmonicRhythm::PerHalfBar if beats.is_multiple_of(2) => beats / 2,
            HarmonicRhythm::PerHalfBar | HarmonicRhythm::PerBar => beats,
        }
    }
}

/// A chord the labeller may choose, with its scale degree (0 = tonic) for the priors.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    chord: Chord,
    degree: usize,
    /// Extra cost of a seventh chord or a borrowed dominant over its plain diatonic triad.
    colour_cost: f64,
}

/// Preference for each scale degree's chord before hearing the melody: I > IV, V > ii, vi >
/// iii > vii°.
const DEGREE_PRIOR: [f64; 7] = [0.45, 0.15, 0.05, 0.3, 0.3, 0.12, -0.1];
/// How the labeller weighs smooth harmony against following the melody.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Labelling {
    /// Cost of each change of chord between windows, in units of a downbeat quarter note's
    /// fit: the higher, the fewer changes.
    pub change_penalty: f32,
    /// How much the preference for each degree's chord before hearing the melody counts
    /// (`DEGREE_PRIOR`, I > IV, V > ...): the higher, the more often the primary chords.
    pub prior_weight: f32,
}

impl Labelling {
    /// What the corpus's pieces were labelled with (a golden test pins the corpus); the
    /// models' plans may use their own (`plan::corpus_harmony`).
    pub const CORPUS: Labelling = Labelling {
        change_penalty: 0.25,
        prior_weight: 1.0,
    };

    /// Both finite and at least 0.
    pub fn is_valid(&self) -> bool {
        [self.change_penalty, self.prior_weight]
            .iter()
            .all(|x| x.is_finite() && *x >= 0.0)
    }
}

/// What a chord tone earns and a non-chord tone costs per unit of accented duration.
const CHORD_TONE: f64 = 1.0;
const ROOT_BONUS: f64 = 0.15;
const NON_CHORD_TONE: f64 = -0.7;
const TONIC_AT_START: f64 = 0.4;
const TONIC_AT_END: f64 = 0.6;

/// Bonus for moving from one degree to another: the cadences and pre-dominant motions.
fn transition_bonus(from: usize, to: usize) -> f64 {
    match (from, to) {
        (4, 0) => 0.4,          // V -> I
        (3, 4) | (1, 4) => 0.2, // IV -> V, ii -> V
        (6, 0) => 0.2,          // vii° -> I
        (3, 0) => 0.15,         // IV -> I
        (0, 3) | (0, 4) => 0.1, // I -> IV, I -> V
        (5, 1) | (5, 3) => 0.1, // vi -> ii, vi -> IV
        (0, 5) => 0.05,         // I -> vi
        _ => 0.0,
    }
}

fn triad_quality(third: u8, fifth: u8) -> Option<ChordQuality> {
    match (third, fifth) {
        (4, 7) => Some(ChordQuality::Major),
        (3, 7) => Some(ChordQuality::Minor),
        (3, 6) => Some(ChordQuality::Diminished),
        (4, 8) => Some(ChordQuality::Augmented),
        _ => None,
    }
}

fn seventh_quality(triad: ChordQuality, seventh: u8) -> Option<ChordQuality> {
    match (triad, seventh) {
        (ChordQuality::Major, 11) => Some(ChordQuality::Major7),
        (ChordQuality::Major, 10) => Some(ChordQuality::Dominant7),
        (ChordQuality::Minor, 10) => Some(ChordQuality::Minor7),
        (ChordQuality::Diminished, 10) => Some(ChordQuality::HalfDiminished7),
        _ => None,
    }
}

/// The diatonic triads and sevenths of the mode, plus V (and V7) from harmonic minor in minor
/// keys whose melody raises the seventh.
fn candidates(mode: Mode, raised_seventh: bool) -> Vec<Candidate> {
    let scale = mode.intervals();
    let above = |root: u8, degree: usize| (scale[degree % 7] + 12 - root) % 12;
    let mut out = Vec::new();
    for (degree, &root) in scale.iter().enumerate() {
        let Some(triad) = triad_quality(above(root, degree + 2), above(root, degree + 4)) else {
            continue;
        };
        out.push(Candidate {
            chord: Chord::new(root, triad),
            degree,
            colour_cost: 0.0,
        });
        if let Some(seventh) = seventh_quality(triad, above(root, degree + 6)) {
            out.push(Candidate {
                chord: Chord::new(root, seventh),
                degree,
                colour_cost: 0.35,
            });
        }
    }
    if matches!(mode, Mode::Minor | Mode::Dorian) && raised_seventh && scale[4] == 7 {
        for (quality, cost) in [(ChordQuality::Major, 0.1), (ChordQuality::Dominant7, 0.45)] {
            out.push(Candidate {
                chord: Chord::new(7, quality),
                degree: 4,
                colour_cost: cost,
            });
        }
    }
    out
}

/// Weight of a step by its place in the bar: the downbeat most, then beats, then the
/// subdivisions between them.
fn accent(meter: Meter, step_in_bar: u32) -> f64 {
    let per_beat = meter.steps_per_beat();
    if step_in_bar == 0 {
        1.0
    } else if step_in_bar.is_multiple_of(per_beat) {
        0.75
    } else if step_in_bar.is_multiple_of(2) {
        0.5
    } else {
        0.35
    }
}

/// Labels chords for a key-relative melody; the result has one chord per felt beat for
/// `bars` bars (repeated within each window of `rhythm`), weighing fit and smoothness as
/// `labelling` says.
pub fn label_chords(
    key: Key,
    meter: Meter,
    bars: u32,
    melody: &[Note],
    rhythm: HarmonicRhythm,
    labelling: Labelling,
) -> ChordTrack {
    let change_penalty = f64::from(labelling.change_penalty);
    let prior_weight = f64::from(labelling.prior_weight);
    let beats_per_window = rhythm.beats_per_window(meter);
    let steps_per_window = beats_per_window * meter.steps_per_beat();
    let total_beats = bars as usize * meter.beats_per_bar() as usize;
    let windows = total_beats.div_ceil(beats_per_window as usize);
    let scale = key.mode.intervals();
    let tonic_quality = triad_quality(scale[2], scale[4]).unwrap_or(ChordQuality::Major);
    let tonic = Chord::new(0, tonic_quality);

    // Accented duration of each pitch class in each window. A step is at most 1/4 of a
    // beat, so normalising by the steps in a beat makes a downbeat quarter note worth ~1.
    let mut weights = vec![[0.0f64; 12]; windows];
    let mut raised_seventh = false;
    let song_steps = bars * meter.steps_per_bar();
    for note in melody {
        let pc = note.pitch.rem_euclid(12) as usize;
        raised_seventh |= pc == 11;
        let end = note.end().min(song_steps);
        for step in note.start..end {
            let window = (step / steps_per_window) as usize;
            if let Some(w) = weights.get_mut(window) {
                w[pc] += accent(meter, step % meter.steps_per_bar()) / 4.0;
            }
        }
    }
    let candidates = candidates(key.mode, raised_seventh);
    let tonic_index = candidates
        .iter()
        .position(|c| c.chord == tonic)
        .unwrap_or(0);
    let heard: Vec<bool> = weights.iter().map(|w| w.iter().any(|&x| x > 0.0)).collect();

    // Fit of each candidate in each heard window.
    let score = |window: usize, c: &Candidate| -> f64 {
        let w = &weights[window];
        let tones = c.chord.pitch_classes();
        let mut s = prior_weight * DEGREE_PRIOR[c.degree] - c.colour_cost;
        for (pc, &x) in w.iter().enumerate() {
            if x == 0.0 {
                continue;
            }
            if tones.contains(&(pc as u8)) {
                s += x * CHORD_TONE;
                if pc as u8 == c.chord.root {
                    s += x * ROOT_BONUS;
                }
            } else {
                s += x * NON_CHORD_TONE;
            }
        }
        s
    };

    // Viterbi over the heard windows only: silent windows hold the chord before them.
    let heard_windows: Vec<usize> = (0..windows).filter(|&w| heard[w]).collect();
    let mut chosen = vec![tonic_index; heard_windows.len()];
    if !heard_windows.is_empty() {
        let n = candidates.len();
        let last = heard_windows.len() - 1;
        let mut best = vec![0.0f64; n];
        let mut back: Vec<Vec<usize>> = Vec::with_capacity(heard_windows.len());
        for (k, &window) in heard_windows.iter().enumerate() {
            let mut next = vec![f64::NEG_INFINITY; n];
            let mut from = vec![0usize; n];
            for (j, c) in candidates.iter().enumerate() {
                let mut s = score(window, c);
                if k == 0 && j == tonic_index {
                    s += TONIC_AT_START;
                }
                if k == last && j == tonic_index {
                    s += TONIC_AT_END;
                }
                if k == 0 {
                    next[j] = s;
                    continue;
                }
                for (i, p) in candidates.iter().enumerate() {
                    let mut t = best[i] + s;
                    if i != j {
                        t -= change_penalty;
                        t += transition_bonus(p.degree, c.degree);
                    }
                    // Ties go to the earliest candidate, which keeps labelling deterministic.
                    if t > next[j] {
                        next[j] = t;
                        from[j] = i;
                    }
                }
            }
            best = next;
            back.push(from);
        }
        let mut state = (0..n).fold(0, |b, j| if best[j] > best[b] { j } else { b });
        for k in (0..heard_windows.len()).rev() {
            chosen[k] = state;
            state = back[k][state];
        }
    }

    // Spread the decision over every beat; leading silence (a pickup bar's rest) is tonic.
    let mut per_window = vec![candidates[tonic_index].chord; windows];
    let mut current = candidates[tonic_index].chord;
    let mut heard_k = 0;
    for (w, slot) in per_window.iter_mut().enumerate() {
        if heard[w] {
            current = candidates[chosen[heard_k]].chord;
            heard_k += 1;
        }
        *slot = current;
    }
    let per_beat = (0..total_beats)
        .map(|beat| per_window[beat / beats_per_window as usize])
        .collect();
    ChordTrack { per_beat }
}

/// Entropy (bits) of the chords' roots, one chord per beat: 0 for a song on one root, 1 for
/// two roots half the time each. A song's pitch-class entropy follows it, as the bass plays
/// roots and the other stems chord tones.
pub fn root_entropy(per_beat: &[Chord]) -> f64 {
    let mut counts = [0usize; 12];
    for chord in per_beat {
        counts[usize::from(chord.root % 12)] += 1;
    }
    let total = per_beat.len() as f64;
    counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C_MAJOR: Key = Key {
        tonic: 0,
        mode: Mode::Major,
    };

    /// Notes of equal length, one after another, from key-relative pitches.
    fn line(pitches: &[i32], duration: u32) -> Vec<Note> {
        pitches
            .iter()
            .enumerate()
            .map(|(i, &pitch)| Note {
                start: i as u32 * duration,
                duration,
                pitch,
                velocity: 96,
            })
            .collect()
    }

    fn roman(track: &ChordTrack, meter: Meter, bar: u32) -> (u8, ChordQuality) {
        let c = track.bar(meter, bar)[0];
        (c.root, c.quality.triad())
    }

    /// The corpus's labelling.
    fn label(
        key: Key,
        meter: Meter,
        bars: u32,
        melody: &[Note],
        rhythm: HarmonicRhythm,
    ) -> ChordTrack {
        label_chords(key, meter, bars, melody, rhythm, Labelling::CORPUS)
    }

    #[test]
    fn a_higher_change_penalty_never_changes_chord_more_often() {
        // A wandering scale line, labelled per beat, where every window could take its own
        // chord.
        let melody = line(
            &[
                0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0, 2, 5, 9, 7, 4, 2, 11, 7, 0,
            ],
            4,
        );
        let labelled = |change_penalty, prior_weight| {
            let labelling = Labelling {
                change_penalty,
                prior_weight,
            };
            label_chords(
                C_MAJOR,
                Meter::FourFour,
                6,
                &melody,
                HarmonicRhythm::PerBeat,
                labelling,
            )
        };
        let mut counts = Vec::new();
        for penalty in [0.0, 0.25, 0.5, 1.0, 2.0, 100.0] {
            counts.push(labelled(penalty, 1.0).changes());
        }
        assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
        assert!(counts[0] > 4, "{counts:?}");
        assert_eq!(counts[5], 0, "a prohibitive penalty keeps one chord");
        // An overwhelming preference for the tonic keeps it through the melody.
        let tonic = labelled(0.25, 100.0);
        assert!(tonic.per_beat.iter().all(|c| c.root == 0), "{tonic:?}");
        assert!(root_entropy(&labelled(0.25, 1.0).per_beat) > 1.0);
    }

    #[test]
    fn root_entropy_counts_bits_of_the_roots_beat_by_beat() {
        let c = Chord::new(0, ChordQuality::Major);
        let cm7 = Chord::new(0, ChordQuality::Minor7);
        let f = Chord::new(5, ChordQuality::Major);
        assert_eq!(root_entropy(&[]), 0.0);
        assert_eq!(
            root_entropy(&[c, cm7, c]),
            0.0,
            "one root, whatever its quality"
        );
        assert!((root_entropy(&[c, c, f, f]) - 1.0).abs() < 1e-12);
    }

    const I: (u8, ChordQuality) = (0, ChordQuality::Major);
    const IV: (u8, ChordQuality) = (5, ChordQuality::Major);
    const V: (u8, ChordQuality) = (7, ChordQuality::Major);

    #[test]
    fn arpeggios_label_i_iv_v() {
        // C E G C | F A C A | G B D B | C E G C, a quarter note each.
        let melody = line(&[0, 4, 7, 12, 5, 9, 12, 9, 7, 11, 14, 11, 0, 4, 7, 12], 4);
        let track = label(C_MAJOR, Meter::FourFour, 4, &melody, HarmonicRhythm::PerBar);
        let bars: Vec<_> = (0..4).map(|b| roman(&track, Meter::FourFour, b)).collect();
        assert_eq!(bars, [I, IV, V, I]);
    }

    #[test]
    fn a_twinkle_like_tune_gets_its_textbook_harmony() {
        // C C G G | E E G - | F F A A | G G E - | A A F F | E E C - | D D B B | C - - -
        let mut melody = Vec::new();
        let bars: [&[(i32, u32)]; 8] = [
            &[(0, 4), (0, 4), (7, 4), (7, 4)],
            &[(4, 4), (4, 4), (7, 8)],
            &[(5, 4), (5, 4), (9, 4), (9, 4)],
            &[(7, 4), (7, 4), (4, 8)],
            &[(9, 4), (9, 4), (5, 4), (5, 4)],
            &[(4, 4), (4, 4), (0, 8)],
            &[(2, 4), (2, 4), (-1, 4), (-1, 4)],
            &[(0, 16)],
        ];
        for (b, notes) in bars.iter().enumerate() {
            let mut t = b as u32 * 16;
            for &(pitch, duration) in notes.iter() {
                melody.push(Note {
                    start: t,
                    duration,
                    pitch,
                    velocity: 96,
                });
                t += duration;
            }
        }
        let track = label(C_MAJOR, Meter::FourFour, 8, &melody, HarmonicRhythm::PerBar);
        let got: Vec<_> = (0..8).map(|b| roman(&track, Meter::FourFour, b)).collect();
        assert_eq!(got, [I, I, IV, I, IV, I, V, I]);
    }

    #[test]
    fn minor_keys_take_a_major_dominant_only_with_the_raised_seventh() {
        let a_minor = Key::new(9, Mode::Minor);
        // A C E C | D F A F | E G# B G# | A C E A
        let melody = line(&[0, 3, 7, 3, 5, 8, 12, 8, 7, 11, 14, 11, 0, 3, 7, 12], 4);
        let track = label(a_minor, Meter::FourFour, 4, &melody, HarmonicRhythm::PerBar);
        let got: Vec<_> = (0..4).map(|b| roman(&track, Meter::FourFour, b)).collect();
        assert_eq!(
            got,
            [
                (0, ChordQuality::Minor),
                (5, ChordQuality::Minor),
                (7, ChordQuality::Major),
                (0, ChordQuality::Minor)
            ]
        );
        // With G natural the dominant stays minor.
        let melody = line(&[0, 3, 7, 3, 7, 10, 14, 10, 0, 3, 7, 12], 4);
        let track = label(a_minor, Meter::FourFour, 3, &melody, HarmonicRhythm::PerBar);
        assert_eq!(roman(&track, Meter::FourFour, 1), (7, ChordQuality::Minor));
    }

    #[test]
    fn three_four_and_six_eight_label_by_felt_beats() {
        // Waltz: C E G | F A C | G B D | C E G, a quarter note each.
        let melody = line(&[0, 4, 7, 5, 9, 12, 7, 11, 14, 0, 4, 7], 4);
        let track = label(
            C_MAJOR,
            Meter::ThreeFour,
            4,
            &melody,
            HarmonicRhythm::PerBar,
        );
        assert_eq!(track.per_beat.len(), 12);
        let got: Vec<_> = (0..4).map(|b| roman(&track, Meter::ThreeFour, b)).collect();
        assert_eq!(got, [I, IV, V, I]);
        // Jig: C E G C E G | F A C F A C | G B D G B D | C E G C E G, eighth notes, per beat.
        let melody = line(
            &[
                0, 4, 7, 0, 4, 7, 5, 9, 12, 5, 9, 12, 7, 11, 14, 7, 11, 14, 0, 4, 7, 0, 4, 7,
            ],
            2,
        );
        let track = label(
            C_MAJOR,
            Meter::SixEight,
            4,
            &melody,
            HarmonicRhythm::PerBeat,
        );
        assert_eq!(track.per_beat.len(), 8);
        let got: Vec<_> = (0..4).map(|b| roman(&track, Meter::SixEight, b)).collect();
        assert_eq!(got, [I, IV, V, I]);
    }

    #[test]
    fn length_follows_bars_and_windows_repeat_their_chord() {
        let melody = line(&[0, 4, 7, 12, 5, 9, 12, 9], 4);
        for rhythm in [
            HarmonicRhythm::PerBeat,
            HarmonicRhythm::PerHalfBar,
            HarmonicRhythm::PerBar,
        ] {
            for meter in Meter::ALL {
                let track = label(C_MAJOR, meter, 5, &melody, rhythm);
                assert_eq!(track.per_beat.len(), 5 * meter.beats_per_bar() as usize);
            }
        }
        let track = label(
            C_MAJOR,
            Meter::FourFour,
            2,
            &melody,
            HarmonicRhythm::PerHalfBar,
        );
        for pair in track.per_beat.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
    }

    #[test]
    fn labelling_is_deterministic() {
        let melody = line(&[0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0, 0], 2);
        let a = label(
            C_MAJOR,
            Meter::FourFour,
            2,
            &melody,
            HarmonicRhythm::PerBeat,
        );
        let b = label(
            C_MAJOR,
            Meter::FourFour,
            2,
            &melody,
            HarmonicRhythm::PerBeat,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn an_empty_melody_rests_on_the_tonic() {
        for (key, quality) in [
            (C_MAJOR, ChordQuality::Major),
            (Key::new(2, Mode::Dorian), ChordQuality::Minor),
        ] {
            let track = label(key, Meter::ThreeFour, 3, &[], HarmonicRhythm::PerBeat);
            assert_eq!(track.per_beat.len(), 9);
            assert!(track.per_beat.iter().all(|&c| c == Chord::new(0, quality)));
        }
    }

    #[test]
    fn silent_windows_hold_the_chord_before_them() {
        // F A C on beats 1-3 of bar 2 after a silent bar, then silence.
        let melody: Vec<Note> = line(&[5, 9, 12], 4)
            .into_iter()
            .map(|n| Note {
                start: n.start + 16,
                ..n
            })
            .collect();
        let track = label(
            C_MAJOR,
            Meter::FourFour,
            3,
            &melody,
            HarmonicRhythm::PerBeat,
        );
        assert!(
            track.per_beat[..4]
                .iter()
                .all(|&c| c == Chord::new(0, ChordQuality::Major))
        );
        let held = track.per_beat[6];
        assert!(track.per_beat[7..].iter().all(|&c| c == held));
    }
}
