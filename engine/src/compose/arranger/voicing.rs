//! Chord voicings with voice leading: which chord tones a style plays (triads, lofi 7ths and
//! 9ths, jazz rootless and shell voicings, rock power chords, open orchestral spacing), and
//! which inversion: the one nearest the previous voicing, kept in the stem's mid register,
//! the way a keyboard player's hands barely move between chords.

use super::scale_step;
use crate::music::{Chord, Key};

/// The chord tones a style voices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoicingKind {
    /// Root, third, fifth in close position (folk guitar, chiptune, synth pads).
    Triad,
    /// Root, third, fifth, seventh; a triad gets its diatonic seventh.
    Seventh,
    /// Lofi electric piano: third, fifth, seventh and ninth, the root left to the bass.
    Lush,
    /// Jazz rootless voicing (3-5-7-9 / 7-9-3-5 by inversion).
    Rootless,
    /// Jazz shell: root, third, seventh.
    Shell,
    /// Rock power chord: root, fifth, octave.
    Power,
    /// Orchestral open spacing: root, fifth, tenth (and the ninth above, for ambient pads).
    Open { ninth: bool },
}

/// Pitch class (key-relative, 0..12) of a chord's diatonic extension `degrees` scale steps above
/// its root (2 = third, 6 = seventh, 1 = ninth); the chord's own tone where it has one.
fn extension(chord: Chord, key: Key, degrees: i32) -> i32 {
    scale_step(key, i32::from(chord.root), degrees).rem_euclid(12)
}

fn third(chord: Chord) -> i32 {
    i32::from(chord.root + chord.quality.intervals().get(1).copied().unwrap_or(4)) % 12
}

fn fifth(chord: Chord) -> i32 {
    i32::from(chord.root + chord.quality.intervals().get(2).copied().unwrap_or(7)) % 12
}

fn seventh(chord: Chord, key: Key) -> i32 {
    match chord.quality.intervals().get(3) {
        Some(&i) if i < 12 => i32::from(chord.root + i) % 12,
        _ => extension(chord, key, 6),
    }
}

fn ninth(chord: Chord, key: Key) -> i32 {
    if chord.quality.intervals().contains(&14) || chord.quality.intervals().contains(&2) {
        (i32::from(chord.root) + 2) % 12
    } else {
        extension(chord, key, 1)
    }
}

/// Pitch classes to voice, in the order they stack in root position.
pub(crate) fn chord_tones(chord: Chord, key: Key, kind: VoicingKind) -> Vec<i32> {
    let root = i32::from(chord.root);
    match kind {
        VoicingKind::Triad | VoicingKind::Power | VoicingKind::Open { .. } => {
            vec![root, third(chord), fifth(chord)]
        }
        VoicingKind::Seventh => vec![root, third(chord), fifth(chord), seventh(chord, key)],
        VoicingKind::Lush | VoicingKind::Rootless => {
            vec![
                third(chord),
                fifth(chord),
                seventh(chord, key),
                ninth(chord, key),
            ]
        }
        VoicingKind::Shell => vec![root, third(chord), seventh(chord, key)],
    }
}

/// Voices chords one after another, each as close as it can be to the one before.
#[derive(Clone, Debug)]
pub(crate) struct VoiceLeader {
    pub kind: VoicingKind,
    pub key: Key,
    /// Lowest and highest pitch a voicing may use, and the register it gravitates to.
    pub low: i32,
    pub high: i32,
    pub center: i32,
    previous: Option<Vec<i32>>,
}

impl VoiceLeader {
    pub fn new(kind: VoicingKind, key: Key, low: i32, high: i32, center: i32) -> VoiceLeader {
        VoiceLeader {
            kind,
            key,
            low,
            high,
            center,
            previous: None,
        }
    }

    /// The voicing of `chord` that moves least from the previous one.
    pub fn voice(&mut self, chord: Chord) -> Vec<i32> {
        let tones = chord_tones(chord, self.key, self.kind);
        let candidates = match self.kind {
            VoicingKind::Power => {
                self.shapes(&[vec![tones[0], tones[0] + fifth_above(chord), tones[0] + 12]])
            }
            VoicingKind::Open { ninth } => {
                let root = tones[0];
                let mut shape = vec![
                    root,
                    root + fifth_above(chord),
                    third(chord) + 12 + 12 * i32::from(third(chord) < root),
                ];
                if ninth {
                    shape.push(root + 14);
                }
                self.shapes(&[shape])
            }
            _ => {
                let stacks: Vec<Vec<i32>> = (0..tones.len())
                    .map(|k| {
                        let mut stack: Vec<i32> = Vec::with_capacity(tones.len());
                        for i in 0..tones.len() {
                            let pc = tones[(k + i) % tones.len()];
                            let p = match stack.last() {
                                None => pc,
                                Some(&prev) => prev + 1 + (pc - prev - 1).rem_euclid(12),
                            };
                            stack.push(p);
                        }
                        stack
                    })
                    .collect();
                self.shapes(&stacks)
            }
        };
        let best = candidates
            .into_iter()
            .min_by_key(|v| self.cost(v))
            .unwrap_or_else(|| {
                tones
                    .iter()
                    .map(|&pc| self.center - 6 + (pc - self.center + 6).rem_euclid(12))
                    .collect()
            });
        self.previous = Some(best.clone());
        best
    }

    /// Every octave placement of each shape that fits the register window.
    fn shapes(&self, stacks: &[Vec<i32>]) -> Vec<Vec<i32>> {
        let mut out = Vec::new();
        for stack in stacks {
            let (Some(&lo), Some(&hi)) = (stack.iter().min(), stack.iter().max()) else {
                continue;
            };
            for octave in -4..=4 {
                let shift = octave * 12;
                if lo + shift >= self.low && hi + shift <= self.high {
                    let mut v: Vec<i32> = stack.iter().map(|p| p + shift).collect();
                    v.sort_unstable();
                    out.push(v);
                }
            }
        }
        out
    }

    /// Movement from the previous voicing (voice by voice) plus a pull to the home register;
    /// in tenths of a semitone to keep it an integer.
    fn cost(&self, v: &[i32]) -> i32 {
        let mean = v.iter().sum::<i32>() * 10 / v.len().max(1) as i32;
        let register = (mean - self.center * 10).abs() / 3;
        let movement = match &self.previous {
            Some(prev) if prev.len() == v.len() => prev
                .iter()
                .zip(v)
                .map(|(a, b)| (a - b).abs() * 10)
                .sum::<i32>(),
            Some(prev) => {
                let prev_mean = prev.iter().sum::<i32>() * 10 / prev.len().max(1) as i32;
                (prev_mean - mean).abs() * v.len() as i32
            }
            None => 0,
        };
        movement + register
    }
}

fn fifth_above(chord: Chord) -> i32 {
    i32::from(chord.quality.intervals().get(2).copied().unwrap_or(7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{ChordQuality, Mode};

    #[test]
    fn voice_leading_moves_little_between_common_chords() {
        let key = Key::new(0, Mode::Major);
        let mut leader = VoiceLeader::new(VoicingKind::Triad, key, -6, 18, 5);
        let c = leader.voice(Chord::new(0, ChordQuality::Major));
        let f = leader.voice(Chord::new(5, ChordQuality::Major));
        let moved: i32 = c.iter().zip(&f).map(|(a, b)| (a - b).abs()).sum();
        assert!(moved <= 4, "{c:?} -> {f:?}");
        assert!(f.iter().all(|&p| (-6..=18).contains(&p)));
    }

    #[test]
    fn lofi_extensions_of_diatonic_triads_stay_in_the_key() {
        for mode in [Mode::Major, Mode::Minor, Mode::Dorian] {
            let key = Key::new(9, mode);
            for degree in 0..7 {
                let root = mode.intervals()[degree] as i32;
                let third = (scale_step(key, root, 2) - root).rem_euclid(12);
                let fifth = (scale_step(key, root, 4) - root).rem_euclid(12);
                let quality = match (third, fifth) {
                    (4, 7) => ChordQuality::Major,
                    (3, 7) => ChordQuality::Minor,
                    _ => ChordQuality::Diminished,
                };
                let chord = Chord::new(root as u8, quality);
                for kind in [
                    VoicingKind::Lush,
                    VoicingKind::Seventh,
                    VoicingKind::Rootless,
                ] {
                    for pc in chord_tones(chord, key, kind) {
                        assert!(
                            key.contains_relative(pc),
                            "{mode:?} {chord:?} {kind:?} {pc}"
                        );
                    }
                }
            }
        }
    }
}
