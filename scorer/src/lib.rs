//! refrain's scorer: the learned critic that judges candidate segments for the reasoning
//! loop and any MIDI file on its own, and the symbolic features of a song that the critic
//! reports and that evaluation compares against real music. This crate never knows how
//! audio is rendered.

#![forbid(unsafe_code)]

pub mod critic;
pub mod features;

pub use critic::{CRITIC_FILE, LearnedCritic};
pub use features::{SongFeatures, StemFeatures, song_features};

/// Everything that can go wrong in the scorer, in words a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A weights file or an input that does not fit the critic.
    #[error("critic: {0}")]
    Model(String),
    #[error(transparent)]
    Engine(#[from] refrain_engine::Error),
    /// The message says the I/O error; it is not the source too, or a chained report would
    /// say it twice.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}
