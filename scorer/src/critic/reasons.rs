//! Reasons in words for a critic's judgement: for each aspect, the plain musical facts of
//! the written bars that bear on it (notes out of the key, onsets off the beat, leaps,
//! density against the context, silent stems), so every decision in a trace says why.

use super::tokens::bar_notes;
use refrain_engine::critic::{ASPECTS, Candidate};
use refrain_engine::music::{Note, Stem};

/// Notes of a stem that start in the written bars, and those in the context, per bar.
struct Split<'a> {
    stem: Stem,
    written: Vec<&'a Note>,
    context: Vec<&'a Note>,
}

fn splits(candidate: &Candidate) -> Vec<Split<'_>> {
    let steps = candidate.song.meter.steps_per_bar();
    candidate
        .song
        .stems
        .iter()
        .map(|t| {
            let (written, context) = t
                .notes
                .iter()
                .partition(|n| candidate.written.contains(&(n.start / steps)));
            Split {
                stem: t.stem,
                written,
                context,
            }
        })
        .collect()
}

/// One sentence per aspect, in [`ASPECTS`] order.
pub fn aspect_reasons(candidate: &Candidate) -> [String; ASPECTS.len()] {
    let song = &candidate.song;
    let parts = splits(candidate);
    let written_bars = candidate.written.len().max(1) as f32;
    let context_bars = (song.bars as usize - candidate.written.len()).max(1) as f32;

    // Harmony: the pitched stem with the most notes outside the key, or off the chords.
    let harmony = parts
        .iter()
        .filter(|p| p.stem.is_pitched() && !p.written.is_empty())
        .map(|p| {
            let outside = p
                .written
                .iter()
                .filter(|n| !song.key.contains_relative(n.pitch))
                .count();
            let off_chord = p
                .written
                .iter()
                .filter(|n| {
                    song.chords
                        .at_step(song.meter, n.start)
                        .is_some_and(|c| !c.contains_relative(n.pitch))
                })
                .count();
            (outside, off_chord, p)
        })
        .max_by_key(|(outside, off, p)| (outside * 4 + off) * 1000 / p.written.len())
        .map(|(outside, off, p)| {
            format!(
                "{}: {outside} of {} notes outside {}, {off} off the chord",
                p.stem,
                p.written.len(),
                song.key
            )
        })
        .unwrap_or_else(|| "no pitched notes written".into());

    // Rhythm: the stem whose onsets sit least on the beat grid, and its bar-to-bar groove.
    let rhythm = parts
        .iter()
        .filter(|p| p.written.len() >= 2)
        .map(|p| {
            let odd = p.written.iter().filter(|n| n.start % 2 == 1).count();
            (odd as f32 / p.written.len() as f32, p)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(share, p)| {
            let groove = groove(&p.written, song.meter.steps_per_bar());
            format!(
                "{}: {:.0}% of onsets on off-sixteenths, bar-to-bar groove {groove:.2}",
                p.stem,
                share * 100.0
            )
        })
        .unwrap_or_else(|| "too few onsets to judge the rhythm".into());

    // Melody: the lead's line in the written bars.
    let melody = parts
        .iter()
        .find(|p| p.stem == Stem::Lead)
        .filter(|p| !p.written.is_empty())
        .map(|p| {
            let pitches: Vec<i32> = p.written.iter().map(|n| n.pitch).collect();
            let range = pitches.iter().max().unwrap_or(&0) - pitches.iter().min().unwrap_or(&0);
            let leaps: Vec<i32> = pitches.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
            let mean = leaps.iter().sum::<i32>() as f32 / leaps.len().max(1) as f32;
            let copied = repeats_context(candidate, Stem::Lead);
            format!(
                "lead: {} notes over {range} semitones, mean leap {mean:.1}{}",
                pitches.len(),
                if copied {
                    "; the written bars repeat the context"
                } else {
                    ""
                }
            )
        })
        .unwrap_or_else(|| "lead silent in the written bars".into());

    // Continuity: the largest change of density from context to written bars.
    let continuity =
        if candidate.written.start == 0 && candidate.written.len() == song.bars as usize {
            "no context: the first segment".to_string()
        } else {
            parts
                .iter()
                .map(|p| {
                    let before = p.context.len() as f32 / context_bars;
                    let after = p.written.len() as f32 / written_bars;
                    ((after + 1.0).ln() - (before + 1.0).ln(), before, after, p)
                })
                .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
                .map(|(_, before, after, p)| {
                    format!(
                        "{}: {before:.1} notes per bar in the context, {after:.1} written",
                        p.stem
                    )
                })
                .unwrap_or_else(|| "no stems".into())
        };

    // Adherence: silent stems, and density against the section's energy.
    let silent: Vec<String> = parts
        .iter()
        .filter(|p| p.written.is_empty())
        .map(|p| p.stem.to_string())
        .collect();
    let energy = song
        .section_at(candidate.written.start)
        .map(|s| s.energy)
        .unwrap_or(0.5);
    let notes: usize = parts.iter().map(|p| p.written.len()).sum();
    let adherence = format!(
        "{}{:.1} notes per bar at section energy {energy:.1}, {} in {}",
        if silent.is_empty() {
            String::new()
        } else {
            format!("silent: {}; ", silent.join(", "))
        },
        notes as f32 / written_bars,
        song.style,
        song.meter
    );
    [harmony, rhythm, melody, continuity, adherence]
}

/// Mean Jaccard similarity of consecutive bars' onset patterns.
fn groove(notes: &[&Note], steps_per_bar: u32) -> f32 {
    let mut patterns: std::collections::BTreeMap<u32, std::collections::BTreeSet<u32>> =
        Default::default();
    for n in notes {
        patterns
            .entry(n.start / steps_per_bar)
            .or_default()
            .insert(n.start % steps_per_bar);
    }
    let bars: Vec<_> = patterns.values().collect();
    let pairs: Vec<f32> = bars
        .windows(2)
        .map(|w| {
            let both = w[0].intersection(w[1]).count() as f32;
            let either = w[0].union(w[1]).count() as f32;
            both / either.max(1.0)
        })
        .collect();
    if pairs.is_empty() {
        1.0
    } else {
        pairs.iter().sum::<f32>() / pairs.len() as f32
    }
}

/// Whether the stem's written bars are note for note the bars just before them.
fn repeats_context(candidate: &Candidate, stem: Stem) -> bool {
    let song = &candidate.song;
    let steps = song.meter.steps_per_bar();
    let length = candidate.written.len() as u32;
    if candidate.written.start < length {
        return false;
    }
    let Some(track) = song.stem(stem) else {
        return false;
    };
    let strip = |n: Note| (n.start, n.pitch, n.duration);
    (0..length).all(|i| {
        let bar = candidate.written.start + i;
        let written: Vec<_> = bar_notes(&track.notes, steps, bar)
            .into_iter()
            .map(strip)
            .collect();
        let earlier: Vec<_> = bar_notes(&track.notes, steps, bar - length)
            .into_iter()
            .map(strip)
            .collect();
        !written.is_empty() && written == earlier
    })
}
