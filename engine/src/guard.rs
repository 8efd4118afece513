//! The memorisation guard: a compact index of the training corpus's lead melodies, and the
//! check that says whether a generated lead copies one of them for longer than a set number of
//! consecutive intervals.
//!
//! A melody is read as its lead line ([`lead_line`]: the highest note of each onset) and then
//! as intervals: how far the pitch moves from one note to the next, and how each onset gap
//! compares with the one before it. Both are relative, so a copy is found in any key and at
//! any tempo. The index keeps a 64-bit hash of every run of `n` consecutive intervals
//! ([`DEFAULT_NGRAM`]); a lead copies the corpus where a chain of overlapping runs is found.
//!
//! # File format ([`GUARD_FILE`])
//! | bytes | what |
//! |---|---|
//! | 4 | magic `RFMG` |
//! | 1 | version, 1 |
//! | 1 | n, intervals per hashed run |
//! | 64 | sha256 of the dataset's manifest.json, lowercase ASCII hex |
//! | 4 | melodies indexed, u32 little-endian |
//! | 4 | hashes, u32 little-endian |
//! | rest | the hashes in ascending order, each as its difference from the one before (the first from 0), an unsigned LEB128 varint |
//!
//! # The hash of a run
//! FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over `2n - 1` bytes:
//! the run's `n` pitch steps, each clamped to -24..=24 and written as `step + 24`, then its
//! `n - 1` gap buckets, each written as `bucket + 3`. A gap bucket is log2(gap / previous
//! gap) rounded to the nearest integer and clamped to -3..=3, worked out in integers; the first
//! interval of a run has no bucket, as the gap before it lies outside the run. A run is thus
//! a property of its own `n + 1` notes only.

use crate::Error;
use crate::dataset;
use crate::generate::sha256_hex;
use crate::music::{Note, Stem};
use std::fs;
use std::path::{Path, PathBuf};

/// Intervals per hashed run: eight intervals are nine notes, about two bars of a reel.
pub const DEFAULT_NGRAM: usize = 8;

/// File name of the index inside an assets folder.
pub const GUARD_FILE: &str = "melody-guard.bin";

const MAGIC: &[u8; 4] = b"RFMG";
const VERSION: u8 = 1;
/// Magic, version, n, manifest hash, melody count, hash count.
const HEADER_BYTES: usize = 4 + 1 + 1 + 64 + 4 + 4;
const MAX_STEP: i32 = 24;
const MAX_BUCKET: i32 = 3;

/// The hashed interval runs of a corpus's lead melodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MelodyIndex {
    n: usize,
    /// Ascending, without repeats.
    hashes: Vec<u64>,
    manifest_sha256: String,
    melodies: usize,
}

/// One interval of a lead line: the pitch step to the next note, and the bucket of the gap to
/// the next onset against the gap before it (0 for the first interval, which has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    step: i8,
    bucket: i8,
}

/// A melody as a monophonic line: at most one note per onset (the highest), by start.
pub fn lead_line(notes: &[Note]) -> Vec<Note> {
    let mut line = notes.to_vec();
    line.sort_by(|a, b| a.start.cmp(&b.start).then(b.pitch.cmp(&a.pitch)));
    line.dedup_by_key(|n| n.start);
    line
}

/// round(log2(gap / previous)) clamped to -3..=3, exactly: the bucket is the largest k with
/// gap / previous >= 2^(k - 1/2), i.e. 2 gap² 4^max(0,-k) >= previous² 4^max(0,k).
fn gap_bucket(gap: u32, previous: u32) -> i8 {
    let (gap, previous) = (u128::from(gap), u128::from(previous));
    (-MAX_BUCKET + 1..=MAX_BUCKET)
        .rev()
        .find(|&k| {
            let up = 2 * (k.max(0) as u32);
            let down = 2 * ((-k).max(0) as u32);
            (2 * gap * gap) << down >= (previous * previous) << up
        })
        .unwrap_or(-MAX_BUCKET) as i8
}

/// The intervals of a lead line (one fewer than its notes).
fn intervals(line: &[Note]) -> Vec<Interval> {
    line.windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let gap = pair[1].start - pair[0].start;
            let bucket = match i.checked_sub(1) {
                Some(before) => gap_bucket(gap, line[before + 1].start - line[before].start),
                None => 0,
            };
            Interval {
                step: (pair[1].pitch - pair[0].pitch).clamp(-MAX_STEP, MAX_STEP) as i8,
                bucket,
            }
        })
        .collect()
}

/// FNV-1a 64 of a run of intervals (the module documentation gives the bytes).
fn run_hash(run: &[Interval]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let steps = run.iter().map(|i| (i32::from(i.step) + MAX_STEP) as u8);
    let buckets = run
        .iter()
        .skip(1)
        .map(|i| (i32::from(i.bucket) + MAX_BUCKET) as u8);
    steps.chain(buckets).fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The hash of every run of `n` intervals of a melody, in order of their first interval.
fn run_hashes(melody: &[Note], n: usize) -> Vec<u64> {
    intervals(&lead_line(melody))
        .windows(n)
        .map(run_hash)
        .collect()
}

fn check_ngram(n: usize) -> Result<(), Error> {
    if (1..=usize::from(u8::MAX)).contains(&n) {
        Ok(())
    } else {
        Err(Error::Request(format!(
            "a melody guard hashes runs of 1 to 255 intervals, not {n}"
        )))
    }
}

/// Collects run hashes melody by melody, so a dataset is indexed without holding it whole.
struct IndexBuilder {
    n: usize,
    hashes: Vec<u64>,
    melodies: usize,
    /// Hashes held before the repeats are dropped again.
    compact_at: usize,
}

impl IndexBuilder {
    fn new(n: usize) -> Result<IndexBuilder, Error> {
        check_ngram(n)?;
        Ok(IndexBuilder {
            n,
            hashes: Vec::new(),
            melodies: 0,
            compact_at: 1 << 20,
        })
    }

    fn add(&mut self, melody: &[Note]) {
        self.hashes.extend(run_hashes(melody, self.n));
        self.melodies += 1;
        // Corpus tunes come in several arrangements with the same lead: keep memory to the
        // distinct runs as we go.
        if self.hashes.len() > self.compact_at {
            self.hashes.sort_unstable();
            self.hashes.dedup();
            self.compact_at = self.compact_at.max(2 * self.hashes.len());
        }
    }

    fn finish(mut self, manifest_sha256: &str) -> Result<MelodyIndex, Error> {
        let is_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
        if manifest_sha256.len() != 64 || !manifest_sha256.bytes().all(is_hex) {
            return Err(Error::Request(format!(
                "a melody guard records its dataset by the 64 lowercase hex digits of a sha256, \
                 not '{manifest_sha256}'"
            )));
        }
        self.hashes.sort_unstable();
        self.hashes.dedup();
        if u32::try_from(self.hashes.len()).is_err() || u32::try_from(self.melodies).is_err() {
            return Err(Error::Request(
                "too many melodies for one melody guard file (at most 2^32 - 1 runs)".into(),
            ));
        }
        Ok(MelodyIndex {
            n: self.n,
            hashes: self.hashes,
            manifest_sha256: manifest_sha256.to_string(),
            melodies: self.melodies,
        })
    }
}

impl MelodyIndex {
    /// Indexes every run of `n` intervals of the melodies' lead lines. `manifest_sha256` names
    /// the dataset they come from. Fails when `n` is not 1-255 or the hash is not 64 lowercase
    /// hex digits.
    pub fn build<M: AsRef<[Note]>>(
        melodies: impl IntoIterator<Item = M>,
        n: usize,
        manifest_sha256: &str,
    ) -> Result<MelodyIndex, Error> {
        let mut builder = IndexBuilder::new(n)?;
        for melody in melodies {
            builder.add(melody.as_ref());
        }
        builder.finish(manifest_sha256)
    }

    /// Intervals per hashed run.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Distinct runs held.
    pub fn ngrams(&self) -> usize {
        self.hashes.len()
    }

    /// Melodies indexed (those shorter than a run included).
    pub fn melodies(&self) -> usize {
        self.melodies
    }

    /// sha256 of the manifest.json of the dataset indexed.
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The most consecutive intervals of `lead` that a chain of overlapping indexed runs
    /// covers: where runs starting at intervals i..=j are all indexed, j - i + n. 0 when no run
    /// of `lead` is indexed.
    pub fn longest_copy(&self, lead: &[Note]) -> usize {
        let mut longest = 0;
        let mut chain = 0;
        for hash in run_hashes(lead, self.n) {
            if self.hashes.binary_search(&hash).is_ok() {
                chain += 1;
                longest = longest.max(chain + self.n - 1);
            } else {
                chain = 0;
            }
        }
        longest
    }

    /// `Some(longest copy)` when `lead` copies an indexed melody for more than `limit`
    /// consecutive intervals.
    pub fn copies(&self, lead: &[Note], limit: usize) -> Option<usize> {
        let longest = self.longest_copy(lead);
        (longest > limit).then_some(longest)
    }

    /// The index in the [`GUARD_FILE`] format (module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + 5 * self.hashes.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        // `build` and `from_bytes` hold n to 1..=255 and the counts to u32.
        bytes.push(self.n as u8);
        bytes.extend_from_slice(self.manifest_sha256.as_bytes());
        bytes.extend_from_slice(&(self.melodies as u32).to_le_bytes());
        bytes.extend_from_slice(&(self.hashes.len() as u32).to_le_bytes());
        let mut previous = 0;
        for &hash in &self.hashes {
            write_varint(&mut bytes, hash - previous);
            previous = hash;
        }
        bytes
    }

    /// Reads the [`GUARD_FILE`] format, checking every field.
    pub fn from_bytes(bytes: &[u8]) -> Result<MelodyIndex, Error> {
        decode(bytes).map_err(|why| Error::Model(format!("melody guard: {why}")))
    }

    /// Writes the index to `path`, beside it first (`path.partial`) and then renamed, so a
    /// failure leaves any earlier file whole.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let mut partial = PathBuf::from(path);
        partial.as_mut_os_string().push(".partial");
        fs::write(&partial, self.to_bytes())
            .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
        fs::rename(&partial, path).map_err(|e| {
            let _ = fs::remove_file(&partial);
            Error::io(format!("replacing {}", path.display()), e)
        })
    }

    /// Reads an index written by [`MelodyIndex::write`].
    pub fn read(path: &Path) -> Result<MelodyIndex, Error> {
        let bytes = fs::read(path).map_err(|e| {
            Error::io(
                format!(
                    "reading {} (built by `refrain dataset guard`)",
                    path.display()
                ),
                e,
            )
        })?;
        decode(&bytes).map_err(|why| {
            Error::Model(format!(
                "{} is not a usable melody guard: {why}; rebuild it with `refrain dataset guard`",
                path.display()
            ))
        })
    }
}

fn write_varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// One unsigned LEB128 varint from the front of `bytes`; None when cut short or over 64 bits.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        let part = u64::from(byte & 0x7f);
        if shift == 63 && part > 1 {
            return None;
        }
        value |= part << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn decode(bytes: &[u8]) -> Result<MelodyIndex, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes is shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    let (header, mut body) = bytes.split_at(HEADER_BYTES);
    if &header[..4] != MAGIC {
        return Err("it does not start with RFMG".into());
    }
    if header[4] != VERSION {
        return Err(format!(
            "version {} (this refrain reads version {VERSION})",
            header[4]
        ));
    }
    let n = usize::from(header[5]);
    if n == 0 {
        return Err("it hashes runs of 0 intervals".into());
    }
    let manifest = &header[6..70];
    if !manifest
        .iter()
        .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err("the dataset's manifest hash is not 64 lowercase hex digits".into());
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let melodies = u32_at(70) as usize;
    let count = u32_at(74) as usize;
    // Every varint is at least a byte: a count beyond the body cannot be true.
    if count > body.len() {
        return Err(format!(
            "it promises {count} hashes but holds {} bytes of them",
            body.len()
        ));
    }
    let mut hashes = Vec::with_capacity(count);
    let mut previous = 0u64;
    for i in 0..count {
        let delta = read_varint(&mut body)
            .ok_or_else(|| format!("hash {} of {count} is cut short or malformed", i + 1))?;
        if i > 0 && delta == 0 {
            return Err(format!("hash {} repeats the one before", i + 1));
        }
        previous = previous
            .checked_add(delta)
            .ok_or_else(|| format!("hash {} of {count} overflows 64 bits", i + 1))?;
        hashes.push(previous);
    }
    if !body.is_empty() {
        return Err(format!("{} bytes follow the last hash", body.len()));
    }
    Ok(MelodyIndex {
        n,
        hashes,
        manifest_sha256: String::from_utf8_lossy(manifest).into_owned(),
        melodies,
    })
}

/// Indexes the lead stem of every piece of a built dataset, training and validation alike (a
/// copy of either is a copy), and records the dataset's manifest hash.
pub fn build_from_dataset(dir: &Path, n: usize) -> Result<MelodyIndex, Error> {
    let mut builder = IndexBuilder::new(n)?;
    let (manifest, manifest_bytes) = dataset::read_manifest(dir)?;
    dataset::for_each_piece(dir, &manifest, |piece| {
        builder.add(&piece.notes(Stem::Lead));
        Ok(())
    })?;
    builder.finish(&sha256_hex(&manifest_bytes))
}

impl crate::reasoning::CopyGuard for MelodyIndex {
    fn longest_copy(&self, lead: &[Note]) -> usize {
        MelodyIndex::longest_copy(self, lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HASH: &str = "5280110006db29c48e7465e532652204ed440ae553ebb2f67ce2c11213af928e";

    /// A melody of `notes` notes from a seed: varied steps and gaps, no two runs alike.
    fn melody(notes: usize, seed: u64) -> Vec<Note> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |modulus: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % modulus
        };
        let mut start = 0;
        let mut pitch = 60;
        (0..notes)
            .map(|_| {
                let note = Note {
                    start,
                    duration: 2,
                    pitch,
                    velocity: 90,
                };
                start += [1, 2, 2, 3, 4, 6][next(6) as usize];
                pitch += next(15) as i32 - 7;
                note
            })
            .collect()
    }

    fn index_of(melodies: &[Vec<Note>]) -> MelodyIndex {
        MelodyIndex::build(melodies, DEFAULT_NGRAM, HASH).unwrap()
    }

    #[test]
    fn a_melody_is_found_transposed_and_at_double_tempo() {
        let tune = melody(30, 1);
        let index = index_of(std::slice::from_ref(&tune));
        assert_eq!(index.longest_copy(&tune), 29);
        let transposed: Vec<Note> = tune
            .iter()
            .map(|n| Note {
                pitch: n.pitch + 5,
                ..*n
            })
            .collect();
        assert_eq!(index.longest_copy(&transposed), 29);
        let doubled: Vec<Note> = tune
            .iter()
            .map(|n| Note {
                start: n.start * 2,
                duration: n.duration * 2,
                ..*n
            })
            .collect();
        assert_eq!(index.longest_copy(&doubled), 29);
        assert_eq!(index.copies(&doubled, 28), Some(29));
        assert_eq!(index.copies(&doubled, 29), None);
    }

    #[test]
    fn a_different_melody_of_the_same_length_is_not_found() {
        let index = index_of(&[melody(30, 1)]);
        assert_eq!(index.longest_copy(&melody(30, 2)), 0);
        assert_eq!(index.copies(&melody(30, 2), 0), None);
    }

    #[test]
    fn overlapping_runs_chain_into_one_copy() {
        let tune = melody(20, 3);
        let index = index_of(std::slice::from_ref(&tune));
        // Twelve notes of the tune (11 intervals) between notes of another, moved to start 100.
        let mut query = melody(6, 4);
        let offset = 100 - tune[4].start;
        query.extend(tune[4..16].iter().map(|n| Note {
            start: n.start + offset,
            pitch: n.pitch + 30,
            ..*n
        }));
        let end = query.last().unwrap().start;
        query.extend(melody(6, 5).iter().map(|n| Note {
            start: n.start + end + 5,
            ..*n
        }));
        assert_eq!(index.longest_copy(&query), 11);
        assert_eq!(index.copies(&query, 10), Some(11));
        assert_eq!(index.copies(&query, 11), None);
    }

    #[test]
    fn short_melodies_and_chords_are_read_as_lead_lines() {
        let index = index_of(&[melody(5, 1)]);
        assert_eq!(index.melodies(), 1);
        assert_eq!(index.ngrams(), 0);
        assert_eq!(index.longest_copy(&melody(5, 1)), 0);
        assert_eq!(index.longest_copy(&[]), 0);

        let tune = melody(12, 6);
        let mut with_chords = tune.clone();
        with_chords.extend(tune.iter().map(|n| Note {
            pitch: n.pitch - 4,
            ..*n
        }));
        with_chords.reverse();
        assert_eq!(lead_line(&with_chords), tune);
        assert_eq!(index_of(&[tune]).longest_copy(&with_chords), 11);
    }

    #[test]
    fn gap_buckets_round_log2_of_the_ratio() {
        assert_eq!(gap_bucket(4, 4), 0);
        assert_eq!(gap_bucket(8, 4), 1);
        assert_eq!(gap_bucket(2, 4), -1);
        assert_eq!(gap_bucket(3, 2), 1); // log2 1.5 = 0.58
        assert_eq!(gap_bucket(4, 3), 0); // 0.42
        assert_eq!(gap_bucket(2, 3), -1); // -0.58
        assert_eq!(gap_bucket(3, 4), 0); // -0.42
        assert_eq!(gap_bucket(64, 1), 3);
        assert_eq!(gap_bucket(1, 64), -3);
        assert_eq!(gap_bucket(u32::MAX, 1), 3);
        assert_eq!(gap_bucket(1, u32::MAX), -3);
    }

    /// The hash is part of the file format: a change to it must be a new version.
    #[test]
    fn run_hashes_are_pinned() {
        let starts = [0, 4, 12, 16, 20, 52, 56, 60, 64];
        let pitches = [60, 62, 61, 91, 61, 61, 66, 63, 64];
        let tune: Vec<Note> = starts
            .iter()
            .zip(pitches)
            .map(|(&start, pitch)| Note {
                start,
                duration: 1,
                pitch,
                velocity: 90,
            })
            .collect();
        // Steps +2 -1 +24 -24 0 +5 -3 +1 (two clamped), buckets 1 -1 0 3 -3 0 0.
        assert_eq!(run_hashes(&tune, 8), [0x8bae_04ac_d25a_3e02]);
        let scale: Vec<Note> = (0..9)
            .map(|i| Note {
                start: 2 * i,
                duration: 2,
                pitch: 2 * i as i32,
                velocity: 90,
            })
            .collect();
        assert_eq!(run_hashes(&scale, 8), [0xb173_c543_8204_137c]);
    }

    #[test]
    fn the_file_round_trips() {
        let index = index_of(&[melody(40, 1), melody(40, 2), melody(3, 3)]);
        assert_eq!(index.ngrams(), 2 * 32);
        let bytes = index.to_bytes();
        assert_eq!(&bytes[..4], b"RFMG");
        assert_eq!(MelodyIndex::from_bytes(&bytes).unwrap(), index);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("assets").join(GUARD_FILE);
        index.write(&path).unwrap();
        let read = MelodyIndex::read(&path).unwrap();
        assert_eq!(read, index);
        assert_eq!(read.manifest_sha256(), HASH);
        assert_eq!(read.melodies(), 3);
        assert_eq!(read.n(), DEFAULT_NGRAM);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors_not_panics() {
        let bytes = index_of(&[melody(40, 1)]).to_bytes();
        for len in 0..bytes.len() {
            assert!(MelodyIndex::from_bytes(&bytes[..len]).is_err(), "{len}");
        }
        let corrupt = |at: usize, byte: u8| {
            let mut bad = bytes.clone();
            bad[at] = byte;
            MelodyIndex::from_bytes(&bad).unwrap_err().to_string()
        };
        assert!(corrupt(0, b'X').contains("RFMG"));
        assert!(corrupt(4, 2).contains("version 2"));
        assert!(corrupt(5, 0).contains("0 intervals"));
        assert!(corrupt(6, b'G').contains("hex"));
        assert!(corrupt(77, 255).contains("promises"));
        let mut longer = bytes.clone();
        longer.push(1);
        assert!(
            MelodyIndex::from_bytes(&longer)
                .unwrap_err()
                .to_string()
                .contains("follow")
        );

        let mut repeated = bytes[..HEADER_BYTES].to_vec();
        repeated[74..78].copy_from_slice(&2u32.to_le_bytes());
        repeated.extend_from_slice(&[5, 0]);
        assert!(
            MelodyIndex::from_bytes(&repeated)
                .unwrap_err()
                .to_string()
                .contains("repeats")
        );
        let mut overflowing = bytes[..HEADER_BYTES].to_vec();
        overflowing[74..78].copy_from_slice(&1u32.to_le_bytes());
        overflowing.extend_from_slice(&[0xff; 9]);
        overflowing.push(0x02);
        assert!(MelodyIndex::from_bytes(&overflowing).is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(GUARD_FILE);
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let error = MelodyIndex::read(&path).unwrap_err().to_string();
        assert!(
            error.contains(GUARD_FILE) && error.contains("cut short"),
            "{error}"
        );
    }

    #[test]
    fn bad_run_lengths_and_hashes_are_refused() {
        assert!(MelodyIndex::build([melody(10, 1)], 0, HASH).is_err());
        assert!(MelodyIndex::build([melody(10, 1)], 256, HASH).is_err());
        assert!(MelodyIndex::build([melody(10, 1)], 8, "abc").is_err());
        assert!(MelodyIndex::build([melody(10, 1)], 8, &HASH.to_uppercase()).is_err());
    }

    #[test]
    fn a_dataset_lead_is_found_in_the_index_built_from_it() {
        use crate::corpus::CorpusReport;
        let pieces = dataset::own_song_pieces(1);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let hash = dataset::write_dataset(
            &data,
            false,
            &CorpusReport::default(),
            ("none", "none"),
            &pieces,
            Vec::new(),
        )
        .unwrap();
        let index = build_from_dataset(&data, DEFAULT_NGRAM).unwrap();
        assert_eq!(index.manifest_sha256(), hash);
        assert_eq!(index.melodies(), pieces.len());
        for piece in &pieces {
            let lead = piece.notes(Stem::Lead);
            let intervals = lead_line(&lead).len().saturating_sub(1);
            if intervals >= DEFAULT_NGRAM {
                assert_eq!(index.longest_copy(&lead), intervals, "{}", piece.id);
            }
        }
    }

    /// `(p50, p90, p99, max)` of copy lengths and the share longer than each of `limits`.
    fn summary(mut lengths: Vec<usize>, limits: &[usize]) -> String {
        lengths.sort_unstable();
        let at = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
        let over: Vec<String> = limits
            .iter()
            .map(|&l| {
                let share = lengths.iter().filter(|&&x| x > l).count() as f64;
                format!(">{l}: {:.1} %", 100.0 * share / lengths.len() as f64)
            })
            .collect();
        format!(
            "{} leads; p50 {} p90 {} p99 {} max {}; {}",
            lengths.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0),
            over.join(", ")
        )
    }

    /// The figures in docs/DATA.md ("Memorisation guard"): REFRAIN_DATASET names a built
    /// dataset, REFRAIN_GUARD the index built from it (default: the shipped one).
    #[test]
    #[ignore = "needs a built dataset and its index; prints the figures in docs/DATA.md"]
    fn measures_the_guard_on_a_built_dataset() {
        use crate::compose::SongRng;
        use crate::dataset::Split;
        use crate::music::Style;
        use crate::plan::Request;
        use rand::{Rng, SeedableRng};

        let data = std::env::var("REFRAIN_DATASET").unwrap_or_else(|_| "/tmp/ds-final".into());
        let data = Path::new(&data);
        let guard = std::env::var("REFRAIN_GUARD")
            .map(PathBuf::from)
            .unwrap_or_else(|_| crate::writer::default_assets_dir().join(GUARD_FILE));
        let index = MelodyIndex::read(&guard).unwrap();
        let (manifest, manifest_bytes) = dataset::read_manifest(data).unwrap();
        assert_eq!(index.manifest_sha256(), sha256_hex(&manifest_bytes));
        let mut train = Vec::new();
        let mut held_out = Vec::new();
        dataset::for_each_piece(data, &manifest, |piece| {
            let lead = lead_line(&piece.notes(Stem::Lead));
            match piece.split {
                Split::Train => train.push(lead),
                Split::Validation => held_out.push((piece.source.starts_with("own/"), lead)),
            }
            Ok(())
        })
        .unwrap();
        let limits = [8, 12, 16, 24, 32];

        let mut rng = SongRng::seed_from_u64(0);
        for _ in 0..8 {
            let (own, lead) = &held_out[rng.random_range(0..held_out.len())];
            let intervals = lead.len() - 1;
            let started = std::time::Instant::now();
            let longest = index.longest_copy(lead);
            eprintln!(
                "validation lead ({}), {intervals} intervals: longest copy {longest} ({:?})",
                if *own { "own song" } else { "corpus tune" },
                started.elapsed()
            );
            assert_eq!(longest, intervals);
        }

        // Every third interval moved by a semitone: no run of 8 survives, so what is found is
        // another melody's run.
        let altered: Vec<usize> = held_out
            .iter()
            .map(|(_, lead)| {
                let mut shift = 0;
                let moved: Vec<Note> = lead
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        if i % 3 == 0 && i > 0 {
                            shift += 1;
                        }
                        Note {
                            pitch: n.pitch + shift,
                            ..*n
                        }
                    })
                    .collect();
                index.longest_copy(&moved)
            })
            .collect();
        eprintln!(
            "validation leads, every third interval altered: {}",
            summary(altered, &limits)
        );

        // Unseen melodies in the corpus's own idiom: held-out leads against training leads only.
        let train_only = MelodyIndex::build(&train, index.n(), index.manifest_sha256()).unwrap();
        for (own, name) in [(false, "corpus tunes"), (true, "own songs")] {
            let found: Vec<(usize, usize)> = held_out
                .iter()
                .filter(|(o, _)| *o == own)
                .map(|(_, lead)| (train_only.longest_copy(lead), lead.len() - 1))
                .collect();
            let whole = found.iter().filter(|(l, i)| l == i).count();
            eprintln!(
                "held-out {name} against a training-only index ({} runs): {}; copied whole {whole}",
                train_only.ngrams(),
                summary(found.iter().map(|f| f.0).collect(), &limits)
            );
        }

        // New songs from refrain's own writers (seeds the dataset never used).
        let started = std::time::Instant::now();
        let fresh: Vec<usize> = (0..200u64)
            .filter_map(|i| {
                let request = Request {
                    style: Some(Style::ALL[i as usize % Style::ALL.len()]),
                    bars: Some(32),
                    seed: 0x5eed_0000 + i,
                    ..Request::default()
                };
                let (_, song) = crate::generate::arrange_request(&request).ok()?;
                let lead = song.stems.iter().find(|t| t.stem == Stem::Lead)?;
                Some(index.longest_copy(&lead.notes))
            })
            .collect();
        eprintln!(
            "new own-writer songs against the full index: {} ({:?})",
            summary(fresh, &limits),
            started.elapsed()
        );
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MelodyIndex::from_bytes(&bytes);
            let mut framed = index_of(&[melody(12, 1)]).to_bytes()[..HEADER_BYTES].to_vec();
            framed.extend_from_slice(&bytes);
            let _ = MelodyIndex::from_bytes(&framed);
        }

        #[test]
        fn a_melody_is_copied_whole_in_its_own_index(seed in any::<u64>(), notes in 9usize..60) {
            let tune = melody(notes, seed);
            let index = index_of(std::slice::from_ref(&tune));
            prop_assert_eq!(index.longest_copy(&tune), notes - 1);
        }
    }
}
