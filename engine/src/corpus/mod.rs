//! The licence-clean melody corpus: public-domain folk collections shipped inside the
//! music21 wheel, fetched from the package registry, checked by hash and parsed from ABC.

pub mod abc;
pub mod wheel;

pub use wheel::{
    MUSIC21_VERSION, MUSIC21_WHEEL_SHA256, fetch_music21_wheel, load_corpus,
    load_corpus_from_texts, load_corpus_from_zip,
};

use crate::licence::{Licence, Refusal};
use crate::music::{Key, Meter, Note};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where one tune came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceItem {
    /// Collection folder inside the corpus, e.g. "oneills1850".
    pub collection: String,
    /// File inside the collection, e.g. "0001-0050.abc".
    pub file: String,
    /// The tune's X: number inside the file.
    pub number: u32,
    pub title: String,
    /// Transcriber or contributor named in the file (Z:), if any.
    pub transcriber: Option<String>,
    /// Publication of the underlying work, e.g. "1903" or "1778-1803".
    pub published: String,
    pub licence: Licence,
    /// sha256 of the tune's ABC text, hex.
    pub content_sha256: String,
}

/// One parsed tune, ready for chord labelling and arrangement.
#[derive(Clone, Debug, PartialEq)]
pub struct CorpusTune {
    pub source: SourceItem,
    pub meter: Meter,
    pub key: Key,
    /// Tempo from Q: if the file gives one.
    pub tempo_bpm: Option<f64>,
    /// Bars after expanding repeats; a pickup bar, if any, is bar 0 with the pickup at its end.
    pub bars: u32,
    /// Key-relative melody on the grid.
    pub melody: Vec<Note>,
}

/// Everything the corpus reader found: usable tunes, refused items, skipped features.
#[derive(Clone, Debug, Default)]
pub struct CorpusReport {
    pub tunes: Vec<CorpusTune>,
    pub refused: Vec<Refusal>,
    /// Counts of what the ABC parser skipped or approximated, by reason.
    pub skipped: BTreeMap<String, u64>,
}
