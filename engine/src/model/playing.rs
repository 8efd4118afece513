//! How each stem is played in each style, as far as decoding needs it: whether it is a single
//! line (one note at a time), whether the notes it strikes together end together, whether a
//! strike ends before the next begins, and whether its strikes hold a fixed number of voices.
//! The decoder thresholds every pitch on its own, so a decoded sample can overlap two notes of
//! a line that never overlaps, cut one voice of a block chord short, let a chord ring into the
//! next, or drop a voice of a triad. These facts are counted on the training
//! pieces by `refrain train calibrate` and stored in the DiT's config; decoding then plays each
//! stem the way its style's training pieces do.

use crate::compose::arranger::make_monophonic;
use crate::music::{ChordTrack, Meter, Note};
use crate::planes::BarPlanes;
use serde::Serialize;

/// A stem whose training notes overlap an earlier note at most this often is a single line;
/// one whose notes overlap a note of an earlier strike at most this often plays its strikes in
/// turn.
pub const SINGLE_LINE_MAX_OVERLAP: f64 = 0.01;
/// A stem plays its strikes in turn too where fewer than this share of the pieces that play
/// it let a strike ring into the next at all: what most of the style's pieces do, though a few
/// do it often (the data's synthwave chords ring over in 3.4 % of notes, ambient's in 7.9 %,
/// yet the median piece of either never does).
pub const IN_TURN_MAX_PIECE_SHARE: f64 = 0.5;
/// A stem whose strikes (two or more notes starting together) end raggedly at most this often
/// ends its strikes together. The training data's chords end raggedly 0.04-2.1 % of the time
/// outside ambient (11 %), its drums 4-23 %: the bound sits in that gap.
pub const STRIKES_MAX_RAGGED: f64 = 0.03;
/// A stem whose onset steps hold one number of notes (two or more) at least this often has
/// that many voices. The training data's chords: 3 notes in 95-99.9 % of onset steps in six
/// styles, 4 in lofi (99.7 %) and ambient (86 %), 3 or 4 in jazz (52 % / 48 %).
pub const FIXED_VOICES_MIN_SHARE: f64 = 0.85;
/// Onset steps are counted by size up to this many notes (larger ones count as this many).
pub const MAX_COUNTED_VOICES: usize = 8;

/// What the training notes of one stem in one style show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlayingCounts {
    pub notes: u64,
    /// Notes that start while an earlier note (or one starting with them) still sounds.
    pub overlapping: u64,
    /// Notes that start while a note of an earlier onset step still sounds.
    pub overlapping_earlier_strikes: u64,
    /// Groups of two or more notes with one start.
    pub strikes: u64,
    /// Strikes whose notes do not all have one duration.
    pub ragged_strikes: u64,
    /// Onset steps by the number of notes starting there (index 0 unused; the last entry
    /// counts `MAX_COUNTED_VOICES` or more).
    pub onset_steps_by_voices: [u64; MAX_COUNTED_VOICES + 1],
    /// Tracks (one per piece) with notes, and those with a note overlapping an earlier strike.
    pub tracks: u64,
    pub tracks_overlapping_earlier_strikes: u64,
}

impl PlayingCounts {
    /// Adds one track's notes (any order).
    pub fn add(&mut self, notes: &[Note]) {
        let mut sorted = notes.to_vec();
        sorted.sort_by_key(|n| (n.start, n.duration));
        self.notes += sorted.len() as u64;
        let mut sounding_until = None;
        for note in &sorted {
            if sounding_until.is_some_and(|end| note.start < end) {
                self.overlapping += 1;
            }
            sounding_until =
                Some(sounding_until.map_or(note.end(), |end: u32| end.max(note.end())));
        }
        let mut earlier_strikes_until = 0;
        let mut rings_over = false;
        for strike in sorted.chunk_by(|a, b| a.start == b.start) {
            if earlier_strikes_until > strike[0].start {
                self.overlapping_earlier_strikes += strike.len() as u64;
                rings_over = true;
            }
            earlier_strikes_until = strike
                .iter()
                .map(Note::end)
                .fold(earlier_strikes_until, u32::max);
            self.onset_steps_by_voices[strike.len().min(MAX_COUNTED_VOICES)] += 1;
            if strike.len() > 1 {
                self.strikes += 1;
                if strike.iter().any(|n| n.duration != strike[0].duration) {
                    self.ragged_strikes += 1;
                }
            }
        }
        if !sorted.is_empty() {
            self.tracks += 1;
            self.tracks_overlapping_earlier_strikes += u64::from(rings_over);
        }
    }

    /// How the stem is played, judged from these counts.
    pub fn playing(&self) -> Playing {
        let share = |part: u64, whole: u64| part as f64 / whole.max(1) as f64;
        let onset_steps: u64 = self.onset_steps_by_voices.iter().sum();
        let voices = (2..=MAX_COUNTED_VOICES)
            .find(|&v| share(self.onset_steps_by_voices[v], onset_steps) >= FIXED_VOICES_MIN_SHARE);
        Playing {
            single_line: self.notes > 0
                && share(self.overlapping, self.notes) <= SINGLE_LINE_MAX_OVERLAP,
            strikes_end_together: self.strikes > 0
                && share(self.ragged_strikes, self.strikes) <= STRIKES_MAX_RAGGED,
            strikes_in_turn: self.notes > 0
                && (share(self.overlapping_earlier_strikes, self.notes) <= SINGLE_LINE_MAX_OVERLAP
                    || share(self.tracks_overlapping_earlier_strikes, self.tracks)
                        < IN_TURN_MAX_PIECE_SHARE),
            voices: voices.map_or(0, |v| v as u8),
        }
    }
}

/// What a stem's density is matched on. Decoding plays a single line as one note per onset
/// step and a stem with fixed voices as that many notes per onset step, whatever number of
/// cells cleared the threshold there; so for those stems the notes decoding keeps follow
/// the onset steps, and matching cells would leave them too thin (a line's extra cells at
/// one step are dropped) or too dense (fixed voices fill a step one cell opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnsetUnit {
    Cells,
    Steps,
}

/// How one stem is played in one style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Playing {
    pub single_line: bool,
    pub strikes_end_together: bool,
    /// Every note ends by the stem's next onset step.
    pub strikes_in_turn: bool,
    /// Notes per onset step, where the style holds one number (0: no rule).
    pub voices: u8,
}

impl Playing {
    /// What decoding keeps of this stem's onset cells: one note per onset step (a single
    /// line) or a fixed number (fixed voices), or every cell.
    pub fn onset_unit(&self) -> OnsetUnit {
        if self.single_line || self.voices >= 2 {
            OnsetUnit::Steps
        } else {
            OnsetUnit::Cells
        }
    }

    /// Plays `notes`, decoded from `planes` (consecutive bars of one stem, onsets as
    /// probabilities), this way:
    /// - fixed voices: each onset step keeps its `voices` likeliest notes, or gains up to that
    ///   many from the likeliest tones of `chords`' chord there that are not already sounding
    ///   (the strike's most common duration, its mean velocity);
    /// - strikes that end together: a strike's notes all take its most common duration (the
    ///   longer on a tie);
    /// - strikes in turn: a note sounding into the next onset step ends there;
    /// - fixed voices again: no more than `voices` notes sound at once; a strike ends the
    ///   oldest notes still sounding from earlier strikes beyond that (the training data's
    ///   fixed-voice chords never sound more: 0 of their steps, every style);
    /// - a single line: one note per start, each ending where the next starts (the arranger's
    ///   `make_monophonic`).
    ///
    /// Notes of one pitch never overlap afterwards (an earlier one ends where the later
    /// starts).
    pub fn apply(
        &self,
        notes: &mut Vec<Note>,
        planes: &[BarPlanes],
        chords: &ChordTrack,
        meter: Meter,
    ) {
        if self.voices > 0 {
            let chord_tone = |step: u32, pitch: i32| {
                chords
                    .at_step(meter, step)
                    .is_some_and(|chord| chord.contains_relative(pitch))
            };
            give_strikes_voices(notes, usize::from(self.voices), planes, &chord_tone);
        }
        if self.strikes_end_together {
            end_strikes_together(notes);
        }
        if self.strikes_in_turn {
            end_strikes_in_turn(notes);
        }
        if self.voices > 0 {
            end_voices_beyond(notes, usize::from(self.voices));
        }
        if self.single_line {
            make_monophonic(notes);
        }
        part_repeated_pitches(notes);
    }
}

/// The decoded onset probability of `pitch` at song step `step` (0 outside the planes).
fn onset_probability(planes: &[BarPlanes], step: u32, pitch: i32) -> f32 {
    let Some(first) = planes.first() else {
        return 0.0;
    };
    let row = pitch - first.stem.pitch_range().0;
    let Some(plane) = planes.get((step / first.steps) as usize) else {
        return 0.0;
    };
    if row < 0 || row as u32 >= plane.rows {
        return 0.0;
    }
    plane.onset[(row as u32 * plane.steps + step % plane.steps) as usize]
}

/// The most common duration of a strike's notes, the longer on a tie.
fn common_duration(strike: &[Note]) -> u32 {
    let mut durations: Vec<u32> = strike.iter().map(|n| n.duration).collect();
    durations.sort_unstable();
    let mut best = (0, durations.first().copied().unwrap_or(1));
    for run in durations.chunk_by(|a, b| a == b) {
        if run.len() >= best.0 {
            best = (run.len(), run[0]);
        }
    }
    best.1
}

/// `chord_tone(step, pitch)`: whether a key-relative pitch is a tone of the chord at a step.
fn give_strikes_voices(
    notes: &mut Vec<Note>,
    voices: usize,
    planes: &[BarPlanes],
    chord_tone: &dyn Fn(u32, i32) -> bool,
) {
    let Some(first) = planes.first() else {
        return;
    };
    let (low, rows) = first.stem.pitch_range();
    notes.sort();
    let mut played: Vec<Note> = Vec::with_capacity(notes.len());
    for strike in notes.chunk_by(|a, b| a.start == b.start) {
        let start = strike[0].start;
        let likelier = |a: &Note, b: &Note| {
            onset_probability(planes, start, b.pitch)
                .total_cmp(&onset_probability(planes, start, a.pitch))
                .then(a.pitch.cmp(&b.pitch))
        };
        let mut kept = strike.to_vec();
        if kept.len() > voices {
            kept.sort_by(likelier);
            kept.truncate(voices);
        } else if kept.len() < voices {
            let duration = common_duration(strike);
            let velocity = (strike.iter().map(|n| u32::from(n.velocity)).sum::<u32>()
                / strike.len() as u32) as u8;
            let sounding = |pitch: i32| {
                played
                    .iter()
                    .chain(strike)
                    .any(|n| n.pitch == pitch && n.start <= start && start < n.end())
            };
            let mut candidates: Vec<Note> = (low..low + rows as i32)
                .filter(|&pitch| chord_tone(start, pitch) && !sounding(pitch))
                .map(|pitch| Note {
                    start,
                    duration,
                    pitch,
                    velocity,
                })
                .collect();
            candidates.sort_by(likelier);
            kept.extend(candidates.into_iter().take(voices - strike.len()));
        }
        played.extend(kept);
    }
    played.sort();
    *notes = played;
}

fn end_strikes_together(notes: &mut [Note]) {
    notes.sort();
    for strike in notes.chunk_by_mut(|a, b| a.start == b.start) {
        let duration = common_duration(strike);
        for note in strike.iter_mut() {
            note.duration = duration;
        }
    }
    notes.sort();
}

fn end_strikes_in_turn(notes: &mut [Note]) {
    notes.sort();
    let starts: Vec<u32> = notes.iter().map(|n| n.start).collect();
    for note in notes.iter_mut() {
        let next = starts.partition_point(|&start| start <= note.start);
        if let Some(&next) = starts.get(next) {
            note.duration = note.duration.min(next - note.start);
        }
    }
}

/// At each onset step, ends the oldest notes still sounding from earlier steps there until no
/// more than `voices` sound.
fn end_voices_beyond(notes: &mut [Note], voices: usize) {
    notes.sort();
    // Indices of the notes from earlier steps still sounding, oldest first: `notes` is
    // sorted, so of one start the shortest, then the lowest.
    let mut sounding: Vec<usize> = Vec::new();
    let mut from = 0;
    while from < notes.len() {
        let start = notes[from].start;
        let striking = notes[from..]
            .iter()
            .take_while(|n| n.start == start)
            .count();
        sounding.retain(|&i| notes[i].end() > start);
        let excess = (sounding.len() + striking).saturating_sub(voices);
        for i in sounding.drain(..excess.min(sounding.len())) {
            notes[i].duration = start - notes[i].start;
        }
        sounding.extend(from..from + striking);
        from += striking;
    }
}

/// Ends a note where the next note of its pitch starts (the planes, MIDI and the instruments
/// hold one note per pitch at a time); a repeat of one start and pitch is dropped.
fn part_repeated_pitches(notes: &mut Vec<Note>) {
    notes.sort_by_key(|n| (n.pitch, n.start));
    notes.dedup_by(|later, earlier| later.pitch == earlier.pitch && later.start == earlier.start);
    for i in 1..notes.len() {
        let (earlier, later) = notes.split_at_mut(i);
        let (earlier, later) = (&mut earlier[i - 1], &later[0]);
        if earlier.pitch == later.pitch && earlier.end() > later.start {
            earlier.duration = later.start - earlier.start;
        }
    }
    notes.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_chords() -> ChordTrack {
        ChordTrack {
            per_beat: Vec::new(),
        }
    }

    /// `notes` played `playing`'s way, with no planes or chords to add voices from.
    fn played(playing: Playing, mut notes: Vec<Note>) -> Vec<Note> {
        playing.apply(&mut notes, &[], &no_chords(), Meter::FourFour);
        notes
    }

    fn note(start: u32, duration: u32, pitch: i32) -> Note {
        Note {
            start,
            duration,
            pitch,
            velocity: 90,
        }
    }

    #[test]
    fn counts_overlaps_and_ragged_strikes() {
        let mut counts = PlayingCounts::default();
        // A line, then a triad with one voice cut short, then a note under the triad's tail.
        counts.add(&[
            note(0, 2, 60),
            note(2, 2, 62),
            note(4, 4, 60),
            note(4, 4, 64),
            note(4, 2, 67),
            note(6, 1, 72),
        ]);
        assert_eq!(
            counts,
            PlayingCounts {
                notes: 6,
                overlapping: 3,
                strikes: 1,
                ragged_strikes: 1,
                overlapping_earlier_strikes: 1,
                onset_steps_by_voices: [0, 3, 0, 1, 0, 0, 0, 0, 0],
                tracks: 1,
                tracks_overlapping_earlier_strikes: 1,
            }
        );
        let playing = counts.playing();
        assert!(!playing.single_line && !playing.strikes_end_together && !playing.strikes_in_turn);

        let mut line = PlayingCounts::default();
        line.add(&[note(0, 2, 60), note(2, 2, 62), note(4, 4, 64)]);
        assert_eq!(
            line.playing(),
            Playing {
                single_line: true,
                strikes_end_together: false,
                strikes_in_turn: true,
                voices: 0,
            }
        );
        let mut chords = PlayingCounts::default();
        chords.add(&[
            note(0, 4, 60),
            note(0, 4, 64),
            note(4, 4, 62),
            note(4, 4, 65),
        ]);
        assert_eq!(
            chords.playing(),
            Playing {
                single_line: false,
                strikes_end_together: true,
                strikes_in_turn: true,
                voices: 2,
            }
        );
        assert_eq!(PlayingCounts::default().playing(), Playing::default());
    }

    #[test]
    fn strikes_take_their_most_common_duration() {
        let notes = vec![
            note(0, 8, 60),
            note(0, 3, 64),
            note(0, 8, 67),
            note(0, 8, 72),
            note(8, 2, 60),
            note(8, 4, 64),
            note(12, 1, 50),
        ];
        let together = Playing {
            strikes_end_together: true,
            ..Playing::default()
        };
        assert_eq!(
            played(together, notes),
            vec![
                note(0, 8, 60),
                note(0, 8, 64),
                note(0, 8, 67),
                note(0, 8, 72),
                // A tie goes to the longer.
                note(8, 4, 60),
                note(8, 4, 64),
                note(12, 1, 50),
            ]
        );
        // A lengthened voice ends where its pitch is struck again.
        let ragged = vec![
            note(0, 8, 60),
            note(0, 8, 64),
            note(0, 2, 67),
            note(4, 4, 67),
        ];
        assert_eq!(
            played(together, ragged),
            vec![
                note(0, 4, 67),
                note(0, 8, 60),
                note(0, 8, 64),
                note(4, 4, 67)
            ]
        );
    }

    #[test]
    fn a_single_line_keeps_one_note_per_start_and_cuts_overlaps() {
        let notes = vec![
            note(0, 4, 60),
            note(0, 2, 67),
            note(2, 4, 64),
            note(8, 2, 62),
        ];
        let line = Playing {
            single_line: true,
            ..Playing::default()
        };
        assert_eq!(
            played(line, notes),
            vec![note(0, 2, 67), note(2, 4, 64), note(8, 2, 62)]
        );

        let untouched = vec![note(0, 4, 60), note(0, 2, 67), note(2, 4, 64)];
        let mut before = untouched.clone();
        before.sort();
        assert_eq!(played(Playing::default(), untouched), before);
    }

    #[test]
    fn fixed_voices_keep_the_likeliest_notes_or_add_the_likeliest_free_pitches() {
        use crate::music::{Meter, Stem};
        let low = Stem::Chords.pitch_range().0;
        let mut planes = vec![BarPlanes::empty(Stem::Chords, Meter::FourFour); 2];
        let mut likely = |step: u32, above: i32, probability: f32| {
            let plane = &mut planes[(step / 16) as usize];
            let cell = (above as u32 * plane.steps + step % 16) as usize;
            plane.onset[cell] = probability;
        };
        // Step 0: two notes decoded, the third voice's likeliest pitch is 7 above, then 9, but
        // only 9 is a tone of the chord there.
        likely(0, 0, 0.9);
        likely(0, 4, 0.8);
        likely(0, 7, 0.3);
        likely(0, 9, 0.2);
        // Step 16: four notes decoded, the one 2 above the least likely.
        for (above, probability) in [(0, 0.9), (2, 0.55), (5, 0.7), (9, 0.8)] {
            likely(16, above, probability);
        }
        // Step 24: one note decoded; 0 above still sounds from step 16, so the next two
        // likeliest free chord tones are taken.
        likely(24, 0, 0.45);
        likely(24, 3, 0.4);
        likely(24, 7, 0.9);
        likely(24, 10, 0.1);
        use crate::music::{Chord, ChordQuality};
        let major_on =
            |above: i32| Chord::new((low + above).rem_euclid(12) as u8, ChordQuality::Major);
        // Beats 0-3 on the chord of 9 above (9, 13, 16), beats 4-7 on that of 3 above (3, 7, 10).
        let chords = ChordTrack {
            per_beat: [vec![major_on(9); 4], vec![major_on(3); 4]].concat(),
        };
        let chord = |start, duration, aboves: &[i32]| -> Vec<Note> {
            aboves
                .iter()
                .map(|&above| note(start, duration, low + above))
                .collect()
        };
        let mut notes = [
            vec![note(0, 8, low), note(0, 6, low + 4)],
            chord(16, 16, &[0, 2, 5, 9]),
            chord(24, 4, &[7]),
        ]
        .concat();
        notes[1].velocity = 70;
        let playing = Playing {
            single_line: false,
            strikes_end_together: false,
            strikes_in_turn: false,
            voices: 3,
        };
        playing.apply(&mut notes, &planes, &chords, Meter::FourFour);
        let mut expected = [
            vec![note(0, 8, low), note(0, 6, low + 4)],
            vec![Note {
                velocity: 80,
                ..note(0, 8, low + 9)
            }],
            // No more than three sound: the strike at 24 ends the one before.
            chord(16, 8, &[0, 5, 9]),
            chord(24, 4, &[3, 7, 10]),
        ]
        .concat();
        expected[1].velocity = 70;
        expected.sort();
        assert_eq!(notes, expected);

        // Without planes nothing is added or dropped.
        let mut unchanged = chord(0, 4, &[0, 4]);
        playing.apply(&mut unchanged, &[], &chords, Meter::FourFour);
        assert_eq!(unchanged, chord(0, 4, &[0, 4]));
    }

    #[test]
    fn counts_fixed_voices_only_where_one_size_dominates() {
        let mut triads = PlayingCounts::default();
        for bar in 0..20 {
            let start = bar * 16;
            triads.add(&[note(start, 8, 60), note(start, 8, 64), note(start, 8, 67)]);
        }
        triads.add(&[note(400, 8, 60), note(400, 8, 64)]);
        assert_eq!(triads.onset_steps_by_voices[3], 20);
        assert_eq!(triads.playing().voices, 3);
        let mut mixed = triads;
        for bar in 30..40 {
            mixed.add(&[
                note(bar * 16, 8, 60),
                note(bar * 16, 8, 64),
                note(bar * 16, 8, 67),
                note(bar * 16, 8, 70),
            ]);
        }
        assert_eq!(mixed.playing().voices, 0, "{mixed:?}");
    }

    #[test]
    fn strikes_in_turn_end_by_the_next_onset_step() {
        let notes = vec![
            note(0, 8, 60),
            note(0, 8, 64),
            note(4, 8, 62),
            note(4, 2, 65),
            note(12, 4, 60),
        ];
        let playing = Playing {
            strikes_in_turn: true,
            ..Playing::default()
        };
        let notes = played(playing, notes);
        assert_eq!(
            notes,
            vec![
                note(0, 4, 60),
                note(0, 4, 64),
                note(4, 2, 65),
                note(4, 8, 62),
                note(12, 4, 60),
            ]
        );
        let mut counts = PlayingCounts::default();
        counts.add(&notes);
        assert_eq!(counts.overlapping_earlier_strikes, 0);
        assert!(counts.playing().strikes_in_turn);
    }

    #[test]
    fn fixed_voices_never_sound_more_than_their_number() {
        let notes = vec![
            // A triad ringing into the next strike of two: the third voice left is its top.
            note(0, 12, 60),
            note(0, 12, 64),
            note(0, 12, 67),
            note(8, 8, 62),
            note(8, 8, 65),
            // One new voice beside two held ones: three sound, nothing ends.
            note(14, 6, 69),
        ];
        let mut kept = notes.clone();
        end_voices_beyond(&mut kept, 3);
        assert_eq!(
            kept,
            vec![
                note(0, 8, 60),
                note(0, 8, 64),
                note(0, 12, 67),
                note(8, 8, 62),
                note(8, 8, 65),
                note(14, 6, 69),
            ]
        );
        let at_most = |notes: &[Note], voices| {
            (0..24).all(|step| {
                notes
                    .iter()
                    .filter(|n| n.start <= step && step < n.end())
                    .count()
                    <= voices
            })
        };
        assert!(!at_most(&notes, 3) && at_most(&kept, 3));
        let mut four = notes.clone();
        end_voices_beyond(&mut four, 4);
        assert!(at_most(&four, 4));
        assert_eq!(
            four.iter()
                .filter(|n| n.start == 0 && n.duration == 12)
                .count(),
            2
        );
    }

    #[test]
    fn strikes_are_in_turn_where_most_pieces_never_ring_over() {
        // One piece lets every chord ring into the next: a third of all notes overlap.
        let ringing: Vec<Note> = (0..4)
            .flat_map(|i| [note(i * 4, 6, 60), note(i * 4, 6, 64)])
            .collect();
        let clean: Vec<Note> = (0..4)
            .flat_map(|i| [note(i * 4, 4, 60), note(i * 4, 4, 64)])
            .collect();
        let mut counts = PlayingCounts::default();
        for track in [&ringing, &clean, &clean, &[][..]] {
            counts.add(track);
        }
        assert_eq!(
            (counts.tracks, counts.tracks_overlapping_earlier_strikes),
            (3, 1),
            "a piece without notes is not counted"
        );
        assert!(counts.overlapping_earlier_strikes * 10 > counts.notes);
        assert!(counts.playing().strikes_in_turn);
        counts.add(&ringing);
        assert!(
            !counts.playing().strikes_in_turn,
            "half the pieces ring over"
        );
    }
}
