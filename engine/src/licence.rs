//! Licences refrain accepts for training data, instruments and assets, and the reasons it
//! refuses everything else. Every source item and every output manifest carries one.

use serde::{Deserialize, Serialize};

/// A licence from the allowed list (see docs/DATA.md and shared DATA-SOURCES.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "licence", rename_all = "kebab-case")]
pub enum Licence {
    /// A work whose copyright has expired, in a faithful transcription that adds nothing.
    PublicDomain,
    Cc0,
    Mit,
    Bsd,
    Apache2,
    Zlib,
    /// Creative Commons Attribution; the attribution travels into every output manifest.
    CcBy {
        attribution: String,
    },
    /// Written by refrain itself (arranger, progression and melody writers, built-in synths);
    /// licensed like the code.
    ProjectOwn,
}

impl Licence {
    /// Short identifier used in manifests and stats ("public-domain", "CC0-1.0", ...).
    pub fn id(&self) -> &'static str {
        match self {
            Licence::PublicDomain => "public-domain",
            Licence::Cc0 => "CC0-1.0",
            Licence::Mit => "MIT",
            Licence::Bsd => "BSD",
            Licence::Apache2 => "Apache-2.0",
            Licence::Zlib => "Zlib",
            Licence::CcBy { .. } => "CC-BY",
            Licence::ProjectOwn => "refrain-own (MIT OR Apache-2.0)",
        }
    }
}

/// Why an item was kept out. Reads as a sentence in the build log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What was refused: a corpus folder, a file, or a tune inside a file.
    pub item: String,
    pub reason: String,
}
