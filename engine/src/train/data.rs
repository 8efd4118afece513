//! Training data for the bar autoencoder: dataset pieces -> stem-bars, kept sparse in memory
//! (a dense grid per stem-bar would take about 12 GB for the full corpus), split by the
//! piece's `split` field so no piece has bars on both sides, and batched in an order that is
//! a pure function of (seed, step) so a resumed run reads exactly the batches it would have.

use crate::Error;
use crate::dataset::{self, Piece, Split};
use crate::model::BarGrid;
use crate::music::{Meter, Note, Stem};
use crate::planes::notes_to_planes;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// One stem in one bar, sparse: the cells with an onset (and its velocity) and with a hold.
#[derive(Clone, Debug, PartialEq)]
pub struct StemBar {
    /// Index of the piece in [`StemBarSet::pieces`].
    pub piece: u32,
    pub bar: u32,
    pub stem: Stem,
    pub meter: Meter,
    /// `(row, step, velocity)` of every onset.
    pub onsets: Vec<(u8, u8, u8)>,
    /// `(row, step)` of every held cell (onset cells included, as in the planes).
    pub holds: Vec<(u8, u8)>,
}

impl StemBar {
    /// The notes starting in this bar, with bar-local starts and durations of 1: what the
    /// onset + pitch metric compares.
    pub fn onset_notes(&self) -> Vec<Note> {
        let (low, _) = self.stem.pitch_range();
        let mut notes: Vec<Note> = self
            .onsets
            .iter()
            .map(|&(row, step, velocity)| Note {
                start: u32::from(step),
                duration: 1,
                pitch: low + i32::from(row),
                velocity,
            })
            .collect();
        notes.sort();
        notes
    }

    /// Whether nothing sounds in this stem-bar.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }
}

/// The stem-bars of a dataset, split by piece.
#[derive(Clone, Debug, Default)]
pub struct StemBarSet {
    pub train: Vec<StemBar>,
    pub validation: Vec<StemBar>,
    /// Piece ids with their split, indexed by [`StemBar::piece`].
    pub pieces: Vec<(String, Split)>,
    /// Stem-bars left out because they were empty.
    pub empty_skipped: u64,
    /// sha256 of the dataset's manifest (empty for sets built in memory).
    pub manifest_sha256: String,
}

/// How pieces become stem-bars.
#[derive(Clone, Copy, Debug)]
pub struct StemBarOptions {
    /// Share of empty stem-bars kept, per mille: a few teach the decoder silence, all of
    /// them (about a third of the corpus) would drown the notes.
    pub empty_per_mille: u64,
}

impl Default for StemBarOptions {
    fn default() -> Self {
        StemBarOptions {
            empty_per_mille: 20,
        }
    }
}

/// SplitMix64: a cheap, well-mixed hash for per-stem-bar decisions.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl StemBarSet {
    /// Adds every stem-bar of a piece to its split's list.
    pub fn add_piece(&mut self, piece: &Piece, options: &StemBarOptions) -> Result<(), Error> {
        let index = self.pieces.len() as u32;
        self.pieces.push((piece.id.clone(), piece.split));
        for stem in Stem::ALL {
            if !piece.stems.iter().any(|s| s.stem == stem) {
                continue;
            }
            let planes = notes_to_planes(stem, piece.meter, piece.bars, &piece.notes(stem))
                .map_err(|e| Error::Corpus(format!("piece {}: {e}", piece.id)))?;
            for (bar, plane) in planes.iter().enumerate() {
                let steps = plane.steps as usize;
                let mut stem_bar = StemBar {
                    piece: index,
                    bar: bar as u32,
                    stem,
                    meter: piece.meter,
                    onsets: Vec::new(),
                    holds: Vec::new(),
                };
                for (cell, &hold) in plane.hold.iter().enumerate() {
                    let (row, step) = ((cell / steps) as u8, (cell % steps) as u8);
                    if plane.onset[cell] >= 0.5 {
                        let velocity = (plane.velocity[cell] * 127.0).round() as u8;
                        stem_bar.onsets.push((row, step, velocity));
                    }
                    if hold >= 0.5 {
                        stem_bar.holds.push((row, step));
                    }
                }
                if stem_bar.is_empty() {
                    let key = (u64::from(index) << 24)
                        ^ ((BarGrid::stem_id(stem) as u64) << 20)
                        ^ bar as u64;
                    if mix(key) % 1000 >= options.empty_per_mille {
                        self.empty_skipped += 1;
                        continue;
                    }
                }
                match piece.split {
                    Split::Train => self.train.push(stem_bar),
                    Split::Validation => self.validation.push(stem_bar),
                }
            }
        }
        Ok(())
    }

    /// Reads a dataset folder made by `refrain dataset build`.
    pub fn read(dir: &Path, options: &StemBarOptions) -> Result<StemBarSet, Error> {
        let (manifest, manifest_bytes) = dataset::read_manifest(dir)?;
        let mut set = StemBarSet {
            manifest_sha256: crate::generate::sha256_hex(&manifest_bytes),
            ..StemBarSet::default()
        };
        dataset::for_each_piece(dir, &manifest, |piece| set.add_piece(&piece, options))?;
        if set.train.is_empty() || set.validation.is_empty() {
            return Err(Error::Corpus(format!(
                "{} has {} training and {} validation stem-bars; training needs both",
                dir.display(),
                set.train.len(),
                set.validation.len()
            )));
        }
        Ok(set)
    }
}

/// One batch, dense, ready for tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[batch, 3, rows, steps]` flattened.
    pub planes: Vec<f32>,
    /// `[batch, 1, rows, steps]` flattened: 1 on real cells, 0 on padding.
    pub mask: Vec<f32>,
    /// `[batch]` stem ids.
    pub stems: Vec<i64>,
    pub len: usize,
}

impl Batch {
    /// Densifies stem-bars into the model's grid.
    pub fn new(grid: BarGrid, bars: &[&StemBar]) -> Batch {
        let (values, cells) = (grid.values(), grid.cells());
        let mut batch = Batch {
            planes: vec![0.0; bars.len() * values],
            mask: vec![0.0; bars.len() * cells],
            stems: Vec::with_capacity(bars.len()),
            len: bars.len(),
        };
        for (i, bar) in bars.iter().enumerate() {
            let planes = &mut batch.planes[i * values..(i + 1) * values];
            for &(row, step, velocity) in &bar.onsets {
                let at = usize::from(row) * grid.steps + usize::from(step);
                planes[at] = 1.0;
                planes[2 * cells + at] = f32::from(velocity) / 127.0;
            }
            for &(row, step) in &bar.holds {
                planes[cells + usize::from(row) * grid.steps + usize::from(step)] = 1.0;
            }
            grid.write_mask(
                bar.stem,
                bar.meter,
                &mut batch.mask[i * cells..(i + 1) * cells],
            );
            batch.stems.push(BarGrid::stem_id(bar.stem) as i64);
        }
        batch
    }
}

/// The training order: epoch after epoch, each a fresh permutation drawn from (seed, epoch),
/// so the batch at any step is known without replaying the steps before it.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    seed: u64,
    len: usize,
    epoch: Option<(u64, Vec<u32>)>,
}

impl EpochOrder {
    pub fn new(seed: u64, len: usize) -> EpochOrder {
        EpochOrder {
            seed,
            len,
            epoch: None,
        }
    }

    /// Indices of the items in batch number `step` (0-based) of size `batch`.
    pub fn batch(&mut self, step: u64, batch: usize) -> Vec<usize> {
        let first = step * batch as u64;
        (first..first + batch as u64)
            .map(|global| self.index(global))
            .collect()
    }

    fn index(&mut self, global: u64) -> usize {
        let len = self.len.max(1) as u64;
        let (epoch, at) = (global / len, (global % len) as usize);
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut order: Vec<u32> = (0..self.len as u32).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(self.seed ^ mix(epoch))));
            self.epoch = Some((epoch, order));
        }
        self.epoch
            .as_ref()
            .map(|(_, o)| o[at] as usize)
            .unwrap_or(0)
    }
}

/// A fixed, seeded sample of up to `count` validation stem-bars (the same every evaluation).
pub fn evaluation_sample(set: &StemBarSet, count: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..set.validation.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed ^ 0x5eed)));
    order.truncate(count);
    order
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::corpus::CorpusReport;
    use crate::dataset::{own_song_pieces, write_dataset};
    use std::collections::BTreeSet;

    /// Eight small pieces written by refrain's own writers, two of them held out.
    pub(crate) fn fixture_pieces() -> Vec<Piece> {
        let mut pieces = own_song_pieces(1);
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.split = if i % 4 == 1 {
                Split::Validation
            } else {
                Split::Train
            };
        }
        pieces
    }

    #[test]
    fn the_loader_splits_by_piece_and_densifies_exactly() {
        let pieces = fixture_pieces();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        write_dataset(
            &out,
            false,
            &CorpusReport::default(),
            ("none", "none"),
            &pieces,
            Vec::new(),
        )
        .unwrap();
        let set = StemBarSet::read(&out, &StemBarOptions::default()).unwrap();
        assert_eq!(set.pieces.len(), pieces.len());
        let train: BTreeSet<u32> = set.train.iter().map(|b| b.piece).collect();
        let validation: BTreeSet<u32> = set.validation.iter().map(|b| b.piece).collect();
        assert!(train.is_disjoint(&validation));
        assert_eq!(validation.len(), 2);
        for bar in &set.train {
            assert_eq!(set.pieces[bar.piece as usize].1, Split::Train);
        }
        for bar in &set.validation {
            assert_eq!(set.pieces[bar.piece as usize].1, Split::Validation);
        }
        // Every bar of every held-out piece's stems is there unless it was an empty one.
        let total: usize = pieces.iter().map(|p| p.stems.len() * p.bars as usize).sum();
        assert_eq!(
            set.train.len() + set.validation.len() + set.empty_skipped as usize,
            total
        );
        // The dense grid holds exactly the planes notes_to_planes makes.
        let grid = crate::model::BarAutoencoderConfig::new().grid();
        let bar = set.train.iter().find(|b| b.onsets.len() > 2).unwrap();
        let piece = &pieces[bar.piece as usize];
        let planes =
            notes_to_planes(bar.stem, piece.meter, piece.bars, &piece.notes(bar.stem)).unwrap();
        let mut expected = vec![0.0; grid.values()];
        grid.write_planes(&planes[bar.bar as usize], &mut expected)
            .unwrap();
        assert_eq!(Batch::new(grid, &[bar]).planes, expected);
    }

    #[test]
    fn the_epoch_order_is_a_function_of_seed_and_step() {
        let mut a = EpochOrder::new(7, 10);
        let mut b = EpochOrder::new(7, 10);
        let first: Vec<Vec<usize>> = (0..6).map(|s| a.batch(s, 4)).collect();
        // Jumping straight to a later step (as a resumed run does) gives the same batch.
        assert_eq!(b.batch(5, 4), first[5]);
        let epoch: BTreeSet<usize> = first.iter().flatten().take(10).copied().collect();
        assert_eq!(epoch.len(), 10);
        assert_ne!(
            EpochOrder::new(8, 10).batch(0, 10),
            first[0..3].concat()[..10]
        );
    }
}
