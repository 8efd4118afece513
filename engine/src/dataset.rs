//! The training corpus: licence-clean melodies (public-domain folk tunes) and refrain's own
//! written songs, arranged into multi-stem pieces with their conditions, written as JSON Lines
//! shards plus a manifest that records every source item, its licence and what was made of it.
//!
//! A piece stores its notes per stem; [`crate::planes::notes_to_planes`] turns them into the
//! stem-bar planes the models train on, exactly (the notes are the sparse form of the planes).
//! The builder is deterministic: the same sources give the same bytes, so the manifest's hash
//! names the dataset.

use crate::Error;
use crate::compose::{LeadSheet, SongRng, arranger};
use crate::corpus::{CorpusReport, CorpusTune, SourceItem};
use crate::generate::{sha256_hex, to_json_pretty};
use crate::harmony::{self, HarmonicRhythm};
use crate::licence::{Licence, Refusal};
use crate::music::{
    Chord, ChordQuality, ChordTrack, Key, Meter, Mood, Note, Section, SectionKind, Song, Stem,
    StemTrack, Style,
};
use crate::plan::{Request, stage_rng, tempo_range};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// Pieces per JSON Lines shard.
const PIECES_PER_SHARD: usize = 500;
/// Share of source items held out for validation (by source, never by bar).
const VALIDATION_PER_MILLE: u64 = 50;

/// How a dataset is built.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Styles each corpus tune is arranged in (distinct, chosen from the tune's hash).
    pub styles_per_tune: usize,
    /// Songs written from scratch per style by refrain's own progression and melody writers.
    pub own_songs_per_style: u32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            styles_per_tune: 2,
            own_songs_per_style: 150,
        }
    }
}

/// Train or validation; decided per source item, so no tune leaks across.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

/// One stem of a piece: notes as `[start, duration, pitch, velocity]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PieceStem {
    pub stem: Stem,
    pub instrument: crate::music::Instrument,
    pub notes: Vec<[i32; 4]>,
}

/// One training piece: a whole arranged song with its conditions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    pub id: String,
    pub split: Split,
    /// Source id in the manifest ("oneills1850/0001-0050.abc#12") or "own/<style>/<n>".
    pub source: String,
    pub licence: String,
    pub style: Style,
    pub mood: Mood,
    pub tempo_bpm: f64,
    pub meter: Meter,
    pub key: Key,
    pub bars: u32,
    pub sections: Vec<Section>,
    pub chords: ChordTrack,
    pub stems: Vec<PieceStem>,
}

impl Piece {
    /// A request for a song like this piece: its style, mood, tempo, key, meter and bar
    /// count, with seed `seed`.
    pub fn request(&self, seed: u64) -> Request {
        Request {
            style: Some(self.style),
            mood: Some(self.mood),
            bpm: Some(self.tempo_bpm),
            key: Some(self.key),
            meter: Some(self.meter),
            bars: Some(self.bars),
            seed,
            ..Request::default()
        }
    }

    fn from_song(
        id: String,
        split: Split,
        source: String,
        licence: &Licence,
        mood: Mood,
        song: &Song,
    ) -> Piece {
        Piece {
            id,
            split,
            source,
            licence: licence.id().to_string(),
            style: song.style,
            mood,
            tempo_bpm: song.tempo_bpm,
            meter: song.meter,
            key: song.key,
            bars: song.bars,
            sections: song.sections.clone(),
            chords: song.chords.clone(),
            stems: song
                .stems
                .iter()
                .map(|t| PieceStem {
                    stem: t.stem,
                    instrument: t.instrument,
                    notes: t
                        .notes
                        .iter()
                        .map(|n| {
                            [
                                n.start as i32,
                                n.duration as i32,
                                n.pitch,
                                i32::from(n.velocity),
                            ]
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The piece's notes for one stem.
    pub fn notes(&self, stem: Stem) -> Vec<Note> {
        self.stems
            .iter()
            .filter(|s| s.stem == stem)
            .flat_map(|s| s.notes.iter())
            .map(|&[start, duration, pitch, velocity]| Note {
                start: start.max(0) as u32,
                duration: duration.max(1) as u32,
                pitch,
                velocity: velocity.clamp(1, 127) as u8,
            })
            .collect()
    }

    /// The piece as a song (for features, rendering and comparison with generated songs).
    pub fn to_song(&self) -> Song {
        Song {
            style: self.style,
            tempo_bpm: self.tempo_bpm,
            meter: self.meter,
            key: self.key,
            bars: self.bars,
            sections: self.sections.clone(),
            chords: self.chords.clone(),
            stems: self
                .stems
                .iter()
                .map(|s| StemTrack {
                    stem: s.stem,
                    instrument: s.instrument,
                    notes: self.notes(s.stem),
                })
                .collect(),
        }
    }

    /// Bars in which at least three stems play: the bars that teach the models ensemble.
    pub fn multi_stem_bars(&self) -> u32 {
        let steps = self.meter.steps_per_bar() as i32;
        (0..self.bars as i32)
            .filter(|bar| {
                self.stems
                    .iter()
                    .filter(|s| s.notes.iter().any(|n| n[0] / steps == *bar))
                    .count()
                    >= 3
            })
            .count() as u32
    }
}

/// A source item in the manifest with what the project made of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestSource {
    pub id: String,
    #[serde(flatten)]
    pub item: SourceItem,
    pub split: Split,
    /// What the project made of it: piece ids with their style and length.
    pub made: Vec<String>,
}

/// DIR/manifest.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub software: String,
    pub corpus_package: String,
    pub corpus_package_sha256: String,
    pub pieces: usize,
    pub bars: u64,
    pub sources: Vec<ManifestSource>,
    /// refrain's own written songs (licensed like the code).
    pub own_works: OwnWorks,
    pub refused: Vec<Refusal>,
    /// What the ABC parser skipped or approximated, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Shard files with their sha256.
    pub files: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwnWorks {
    pub pieces: usize,
    pub licence: String,
    pub note: String,
}

/// `refrain dataset stats` output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub pieces: usize,
    pub bars: u64,
    pub multi_stem_bars: u64,
    pub styles: Vec<Style>,
    pub pieces_per_style: BTreeMap<String, usize>,
    pub licences: BTreeMap<String, usize>,
    pub splits: BTreeMap<String, usize>,
    pub sources: usize,
    pub refused: usize,
    pub manifest_sha256: String,
}

fn hash_u64(text: &str) -> u64 {
    let digest = sha256_hex(text.as_bytes());
    u64::from_str_radix(&digest[..16], 16).unwrap_or(0)
}

fn split_for(source_id: &str) -> Split {
    if hash_u64(source_id) % 1000 < VALIDATION_PER_MILLE {
        Split::Validation
    } else {
        Split::Train
    }
}

/// Shifts a tune by whole octaves so most of it sits in the lead register, then folds any
/// stragglers in; keeps the contour of all but the outliers.
fn place_in_lead_register(melody: &[Note]) -> Vec<Note> {
    if melody.is_empty() {
        return Vec::new();
    }
    let mut pitches: Vec<i32> = melody.iter().map(|n| n.pitch).collect();
    pitches.sort_unstable();
    let median = pitches[pitches.len() / 2];
    // The lead sings best around relative pitch +9 (a sixth above the tonic).
    let shift = ((9 - median) as f64 / 12.0).round() as i32 * 12;
    melody
        .iter()
        .map(|n| Note {
            pitch: Stem::Lead.fold_into_range(n.pitch + shift),
            ..*n
        })
        .collect()
}

/// Sections of a tune from its repetition: eight-bar blocks (four in short tunes); a block
/// that repeats an earlier one takes its kind, new material takes the next kind.
fn tune_sections(tune_bars: u32, melody: &[Note], meter: Meter, outro: u32) -> Vec<Section> {
    let steps = meter.steps_per_bar();
    let mut sections = Vec::new();
    let mut start = 0;
    let pickup = melody
        .first()
        .is_some_and(|n| n.start > 0 && n.start < steps);
    if pickup && tune_bars > 4 {
        sections.push(Section {
            kind: SectionKind::Intro,
            start_bar: 0,
            bars: 1,
            energy: 0.35,
        });
        start = 1;
    }
    let block = if tune_bars - start >= 16 { 8 } else { 4 };
    // A block's melody as (step in block, pitch, duration), to recognise repeats.
    type BlockMelody = Vec<(u32, i32, u32)>;
    let block_notes = |from: u32, bars: u32| -> BlockMelody {
        melody
            .iter()
            .filter(|n| n.start >= from * steps && n.start < (from + bars) * steps)
            .map(|n| (n.start - from * steps, n.pitch, n.duration))
            .collect()
    };
    let mut seen: Vec<(BlockMelody, SectionKind)> = Vec::new();
    let order = [SectionKind::Verse, SectionKind::Chorus, SectionKind::Bridge];
    let mut next_kind = 0;
    while start < tune_bars {
        let bars = if tune_bars - start < block * 2 && tune_bars - start > block {
            tune_bars - start
        } else {
            block.min(tune_bars - start)
        };
        let notes = block_notes(start, bars);
        let kind = match seen.iter().find(|(n, _)| *n == notes) {
            Some((_, kind)) => *kind,
            None => {
                let kind = order[next_kind.min(order.len() - 1)];
                next_kind += 1;
                seen.push((notes, kind));
                kind
            }
        };
        let energy = match kind {
            SectionKind::Chorus => 0.8,
            SectionKind::Bridge => 0.6,
            _ => 0.55,
        };
        sections.push(Section {
            kind,
            start_bar: start,
            bars,
            energy,
        });
        start += bars;
    }
    if outro > 0 {
        sections.push(Section {
            kind: SectionKind::Outro,
            start_bar: tune_bars,
            bars: outro,
            energy: 0.3,
        });
    }
    sections
}

pub(crate) fn tonic_chord(key: Key) -> Chord {
    let quality = if key.mode.is_minor_like() {
        ChordQuality::Minor
    } else {
        ChordQuality::Major
    };
    Chord::new(0, quality)
}

fn mood_for(key: Key, rng: &mut SongRng) -> Mood {
    let choices: &[Mood] = if key.mode.is_minor_like() {
        &[Mood::Sad, Mood::Nostalgic, Mood::Dark, Mood::Calm]
    } else {
        &[Mood::Happy, Mood::Calm, Mood::Energetic, Mood::Nostalgic]
    };
    choices[rng.random_range(0..choices.len())]
}

/// Bars of tonic every corpus piece ends on (its outro).
pub const CORPUS_OUTRO_BARS: u32 = 2;

/// The lead sheet of a corpus tune in a style: the tune's melody and key, chords labelled
/// from the melody, form from its repeats, a two-bar outro on the tonic, a style tempo.
pub fn tune_lead_sheet(tune: &CorpusTune, style: Style, rng: &mut SongRng) -> LeadSheet {
    let melody = place_in_lead_register(&tune.melody);
    let rhythm = HarmonicRhythm::corpus(tune.meter);
    let mut chords = harmony::label_chords(
        tune.key,
        tune.meter,
        tune.bars,
        &melody,
        rhythm,
        harmony::Labelling::CORPUS,
    );
    let tonic = tonic_chord(tune.key);
    chords
        .per_beat
        .resize((tune.bars * tune.meter.beats_per_bar()) as usize, tonic);
    chords.per_beat.extend(std::iter::repeat_n(
        tonic,
        (CORPUS_OUTRO_BARS * tune.meter.beats_per_bar()) as usize,
    ));
    let (lo, hi) = tempo_range(style);
    // Tempo variation is part of the augmentation: anywhere in the style's range.
    let tempo_bpm = f64::from(rng.random_range(lo as u32..=hi as u32));
    LeadSheet {
        style,
        mood: mood_for(tune.key, rng),
        tempo_bpm,
        meter: tune.meter,
        key: tune.key,
        bars: tune.bars + CORPUS_OUTRO_BARS,
        sections: tune_sections(tune.bars, &melody, tune.meter, CORPUS_OUTRO_BARS),
        chords,
        melody,
        looped: false,
    }
}

/// Velocity variation (augmentation): scales every note's velocity by one factor.
fn vary_velocity(song: &mut Song, factor: f32) {
    for track in &mut song.stems {
        for note in &mut track.notes {
            note.velocity = (f32::from(note.velocity) * factor)
                .round()
                .clamp(1.0, 127.0) as u8;
        }
    }
}

/// Styles a tune is arranged in: distinct, from its hash.
fn styles_for(source_id: &str, count: usize) -> Vec<Style> {
    let mut rng = SongRng::seed_from_u64(hash_u64(source_id));
    let mut styles = Style::ALL.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < count.min(Style::ALL.len()) {
        let i = rng.random_range(0..styles.len());
        chosen.push(styles.remove(i));
    }
    chosen
}

/// Every piece the builder makes, in a fixed order: corpus tunes first, then own songs.
pub fn build_pieces(
    report: &CorpusReport,
    options: &BuildOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<Piece>, Vec<ManifestSource>) {
    let total = report.tunes.len() * options.styles_per_tune
        + Style::ALL.len() * options.own_songs_per_style as usize;
    let mut pieces = Vec::with_capacity(total);
    let mut sources = Vec::new();
    for tune in &report.tunes {
        let source_id = format!(
            "{}/{}#{}",
            tune.source.collection, tune.source.file, tune.source.number
        );
        let split = split_for(&source_id);
        let mut made = Vec::new();
        for style in styles_for(&source_id, options.styles_per_tune) {
            let mut rng = stage_rng(hash_u64(&source_id), style.name());
            let sheet = tune_lead_sheet(tune, style, &mut rng);
            let mut song = arranger::arrange(&sheet, &Stem::ALL, &mut rng);
            vary_velocity(&mut song, rng.random_range(0.85..1.1));
            let id = format!("p{:06}", pieces.len());
            made.push(format!(
                "{id}: arranged as {style}, {} bars at {} bpm",
                song.bars, song.tempo_bpm
            ));
            pieces.push(Piece::from_song(
                id,
                split,
                source_id.clone(),
                &tune.source.licence,
                sheet.mood,
                &song,
            ));
            progress(pieces.len(), total);
        }
        sources.push(ManifestSource {
            id: source_id,
            item: tune.source.clone(),
            split,
            made,
        });
    }
    for style in Style::ALL {
        for n in 0..options.own_songs_per_style {
            let source_id = format!("own/{style}/{n}");
            let mut rng = SongRng::seed_from_u64(hash_u64(&source_id));
            let request = Request {
                style: Some(style),
                bars: Some(rng.random_range(16..=64)),
                seed: hash_u64(&source_id),
                ..Request::default()
            };
            let Ok((planned, mut song)) = crate::generate::arrange_request(&request) else {
                continue;
            };
            vary_velocity(&mut song, rng.random_range(0.85..1.1));
            let id = format!("p{:06}", pieces.len());
            pieces.push(Piece::from_song(
                id,
                split_for(&source_id),
                source_id,
                &Licence::ProjectOwn,
                planned.mood,
                &song,
            ));
            progress(pieces.len(), total);
        }
    }
    (pieces, sources)
}

/// Pieces written from scratch by refrain's own writers only, `per_style` for each style:
/// what `build_pieces` makes with no corpus (small fixtures for tests and benches).
pub fn own_song_pieces(per_style: u32) -> Vec<Piece> {
    let options = BuildOptions {
        styles_per_tune: 1,
        own_songs_per_style: per_style,
    };
    build_pieces(&CorpusReport::default(), &options, &|_, _| {}).0
}

/// Writes the pieces and the manifest into `out` (assembled beside it, then renamed).
pub fn write_dataset(
    out: &Path,
    overwrite: bool,
    report: &CorpusReport,
    corpus_package: (&str, &str),
    pieces: &[Piece],
    sources: Vec<ManifestSource>,
) -> Result<String, Error> {
    crate::generate::check_output_dir(out, overwrite)?;
    let staging = crate::generate::staging_dir(out)?;
    let result = (|| {
        let mut files = Vec::new();
        for (i, shard) in pieces.chunks(PIECES_PER_SHARD).enumerate() {
            let name = format!("pieces-{i:03}.jsonl");
            let mut bytes = Vec::new();
            for piece in shard {
                serde_json::to_writer(&mut bytes, piece)
                    .map_err(|e| Error::Corpus(format!("could not serialise a piece: {e}")))?;
                bytes.push(b'\n');
            }
            let path = staging.join(&name);
            fs::File::create(&path)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            files.push((name, sha256_hex(&bytes)));
        }
        let own = pieces
            .iter()
            .filter(|p| p.source.starts_with("own/"))
            .count();
        let manifest = DatasetManifest {
            software: crate::generate::SOFTWARE.to_string(),
            corpus_package: corpus_package.0.to_string(),
            corpus_package_sha256: corpus_package.1.to_string(),
            pieces: pieces.len(),
            bars: pieces.iter().map(|p| u64::from(p.bars)).sum(),
            sources,
            own_works: OwnWorks {
                pieces: own,
                licence: Licence::ProjectOwn.id().to_string(),
                note: "songs written by refrain's own progression and melody writers and \
                       arranger; every arrangement of a corpus melody is likewise the \
                       project's own work"
                    .into(),
            },
            refused: report.refused.clone(),
            skipped: report.skipped.clone(),
            files,
        };
        let bytes = to_json_pretty(&manifest)?;
        let path = staging.join("manifest.json");
        fs::write(&path, &bytes)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        crate::generate::move_into_place(&staging, out)?;
        Ok(sha256_hex(&bytes))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Reads DIR/manifest.json; returns it with its bytes (whose sha256 names the dataset).
pub fn read_manifest(dir: &Path) -> Result<(DatasetManifest, Vec<u8>), Error> {
    let manifest_path = dir.join("manifest.json");
    let manifest_bytes = fs::read(&manifest_path).map_err(|e| {
        Error::io(
            format!(
                "reading {} (is this a dataset folder made by `refrain dataset build`?)",
                manifest_path.display()
            ),
            e,
        )
    })?;
    let manifest: DatasetManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        Error::Corpus(format!(
            "{} is not a dataset manifest: {e}",
            manifest_path.display()
        ))
    })?;
    Ok((manifest, manifest_bytes))
}

/// Visits every piece of a built dataset in shard order, checking each shard against the
/// manifest's hash first so a changed dataset is never read as the one the manifest names.
pub fn for_each_piece(
    dir: &Path,
    manifest: &DatasetManifest,
    mut visit: impl FnMut(Piece) -> Result<(), Error>,
) -> Result<(), Error> {
    for (name, expected) in &manifest.files {
        let path = dir.join(name);
        let bytes =
            fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if sha256_hex(&bytes) != *expected {
            return Err(Error::Corpus(format!(
                "{} does not match the manifest's hash: the dataset was changed after it was built",
                path.display()
            )));
        }
        for (line_number, line) in BufReader::new(bytes.as_slice()).lines().enumerate() {
            let line = line.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let piece: Piece = serde_json::from_str(&line).map_err(|e| {
                Error::Corpus(format!("{} line {}: {e}", path.display(), line_number + 1))
            })?;
            visit(piece)?;
        }
    }
    Ok(())
}

/// Every piece of one split of the built dataset at `dir`, in shard order.
pub fn read_split(dir: &Path, split: Split) -> Result<Vec<Piece>, Error> {
    let (manifest, _) = read_manifest(dir)?;
    let mut pieces = Vec::new();
    for_each_piece(dir, &manifest, |piece| {
        if piece.split == split {
            pieces.push(piece);
        }
        Ok(())
    })?;
    Ok(pieces)
}

/// Reads a built dataset back and counts it (pieces and bars from the shards themselves).
pub fn dataset_stats(dir: &Path) -> Result<DatasetStats, Error> {
    let (manifest, manifest_bytes) = read_manifest(dir)?;
    let mut stats = DatasetStats {
        pieces: 0,
        bars: 0,
        multi_stem_bars: 0,
        styles: Vec::new(),
        pieces_per_style: BTreeMap::new(),
        licences: BTreeMap::new(),
        splits: BTreeMap::new(),
        sources: manifest.sources.len(),
        refused: manifest.refused.len(),
        manifest_sha256: sha256_hex(&manifest_bytes),
    };
    for_each_piece(dir, &manifest, |piece| {
        stats.pieces += 1;
        stats.bars += u64::from(piece.bars);
        stats.multi_stem_bars += u64::from(piece.multi_stem_bars());
        *stats
            .pieces_per_style
            .entry(piece.style.name().to_string())
            .or_default() += 1;
        *stats.licences.entry(piece.licence.clone()).or_default() += 1;
        let split = match piece.split {
            Split::Train => "train",
            Split::Validation => "validation",
        };
        *stats.splits.entry(split.to_string()).or_default() += 1;
        if !stats.styles.contains(&piece.style) {
            stats.styles.push(piece.style);
        }
        Ok(())
    })?;
    stats.styles.sort();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::Mode;

    /// A little reel-like tune in D major, 8 bars, AABB-ish, made here.
    fn fixture_tune(number: u32) -> CorpusTune {
        let key = Key::new(2, Mode::Major);
        let scale = [0, 2, 4, 5, 7, 9, 11, 12];
        let mut melody = Vec::new();
        for bar in 0..8u32 {
            for eighth in 0..8u32 {
                let degree = ((bar % 4) * 2 + eighth * (number % 3 + 1)) as usize % scale.len();
                melody.push(Note {
                    start: bar * 16 + eighth * 2,
                    duration: 2,
                    pitch: scale[degree],
                    velocity: 96,
                });
            }
        }
        CorpusTune {
            source: SourceItem {
                collection: "testcollection".into(),
                file: "tunes.abc".into(),
                number,
                title: format!("Test Reel {number}"),
                transcriber: None,
                published: "1883".into(),
                licence: Licence::PublicDomain,
                content_sha256: sha256_hex(format!("tune {number}").as_bytes()),
            },
            meter: Meter::FourFour,
            key,
            tempo_bpm: None,
            bars: 8,
            melody,
        }
    }

    fn fixture_report() -> CorpusReport {
        CorpusReport {
            tunes: (1..=4).map(fixture_tune).collect(),
            refused: vec![Refusal {
                item: "essenFolksong".into(),
                reason: "licensed for non-commercial use only".into(),
            }],
            skipped: BTreeMap::new(),
        }
    }

    #[test]
    fn tune_sections_follow_repeats_and_tile_the_song() {
        let tune = fixture_tune(1);
        let sections = tune_sections(16, &tune.melody, Meter::FourFour, 2);
        let mut next = 0;
        for s in &sections {
            assert_eq!(s.start_bar, next);
            next = s.end_bar();
        }
        assert_eq!(next, 18);
        assert_eq!(sections.last().map(|s| s.kind), Some(SectionKind::Outro));
    }

    #[test]
    fn lead_register_keeps_the_tune_inside_the_lead_range() {
        let low: Vec<Note> = fixture_tune(2)
            .melody
            .iter()
            .map(|n| Note {
                pitch: n.pitch - 36,
                ..*n
            })
            .collect();
        let placed = place_in_lead_register(&low);
        let (lo, rows) = Stem::Lead.pitch_range();
        assert!(
            placed
                .iter()
                .all(|n| n.pitch >= lo && n.pitch < lo + rows as i32)
        );
        // Whole-octave shift: intervals survive.
        assert_eq!(
            placed[1].pitch - placed[0].pitch,
            low[1].pitch - low[0].pitch
        );
    }

    #[test]
    fn builds_writes_and_counts_a_small_dataset_deterministically() {
        let report = fixture_report();
        let options = BuildOptions {
            styles_per_tune: 2,
            own_songs_per_style: 1,
        };
        let (pieces, sources) = build_pieces(&report, &options, &|_, _| {});
        assert_eq!(pieces.len(), 4 * 2 + 8);
        assert_eq!(sources.len(), 4);
        for piece in &pieces {
            assert_eq!(piece.stems.len(), 5);
            for stem in Stem::ALL {
                crate::planes::notes_to_planes(stem, piece.meter, piece.bars, &piece.notes(stem))
                    .unwrap_or_else(|e| panic!("{}: {e}", piece.id));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        let hash = write_dataset(
            &out,
            false,
            &report,
            ("test", "0"),
            &pieces,
            sources.clone(),
        )
        .unwrap();
        let stats = dataset_stats(&out).unwrap();
        assert_eq!(stats.pieces, pieces.len());
        assert_eq!(stats.styles.len(), 8);
        assert_eq!(stats.refused, 1);
        assert_eq!(stats.manifest_sha256, hash);
        assert_eq!(stats.licences.values().sum::<usize>(), pieces.len());
        assert!(stats.multi_stem_bars > 0 && stats.multi_stem_bars <= stats.bars);

        // Same input, same bytes.
        let (again, sources_again) = build_pieces(&report, &options, &|_, _| {});
        let out2 = dir.path().join("data2");
        let hash2 =
            write_dataset(&out2, false, &report, ("test", "0"), &again, sources_again).unwrap();
        assert_eq!(hash, hash2);

        // A non-empty folder is not replaced without being asked.
        assert!(write_dataset(&out, false, &report, ("test", "0"), &pieces, sources).is_err());
    }

    #[test]
    fn a_tampered_shard_is_detected() {
        let report = fixture_report();
        let options = BuildOptions {
            styles_per_tune: 1,
            own_songs_per_style: 0,
        };
        let (pieces, sources) = build_pieces(&report, &options, &|_, _| {});
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        write_dataset(&out, false, &report, ("test", "0"), &pieces, sources).unwrap();
        fs::write(out.join("pieces-000.jsonl"), b"{}\n").unwrap();
        assert!(
            dataset_stats(&out)
                .unwrap_err()
                .to_string()
                .contains("hash")
        );
    }

    #[test]
    fn splits_are_by_source_and_stable() {
        let ids: Vec<String> = (0..2000).map(|i| format!("c/f.abc#{i}")).collect();
        let validation = ids
            .iter()
            .filter(|id| split_for(id) == Split::Validation)
            .count();
        assert!((50..=150).contains(&validation), "{validation}");
        assert_eq!(split_for("x"), split_for("x"));
    }
}
