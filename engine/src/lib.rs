//! refrain's engine: the music types, the planner, the composer that writes every stem, the
//! representation the models learn from, and the paths out to MIDI and audio.
//!
//! The data flow is request -> [`plan`] -> compose -> [`music::Song`] -> MIDI / render / mix ->
//! export; docs/ARCHITECTURE.md maps it to files.

#![forbid(unsafe_code)]

pub mod batch;
pub mod compose;
pub mod corpus;
pub mod critic;
pub mod dataset;
pub mod generate;
pub mod guard;
pub mod harmony;
pub mod licence;
pub mod midi;
pub mod model;
pub mod music;
pub mod plan;
pub mod planes;
pub mod prompt;
pub mod reasoning;
pub mod render;
pub mod session;
#[cfg(feature = "train")]
pub mod train;
pub mod words;
pub mod writer;

/// Everything that can go wrong inside the engine, in words a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Notes that the grid representation cannot hold.
    #[error("cannot represent the song: {0}")]
    Representation(String),
    /// A MIDI file that could not be read or written.
    #[error("MIDI: {0}")]
    Midi(String),
    /// ABC notation or a corpus item that could not be used.
    #[error("corpus: {0}")]
    Corpus(String),
    /// A request that makes no sense (bad key, tempo out of range, ...).
    #[error("request: {0}")]
    Request(String),
    /// A model file or a model's input that does not fit (weights, config, checkpoint).
    #[error("model: {0}")]
    Model(String),
    /// Audio rendering or WAV writing failed.
    #[error("audio: {0}")]
    Audio(String),
    /// The message already says the I/O error, so it is not also given as the error's
    /// source: a report that prints the chain (anyhow's `{:#}`) would say it twice.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done, e.g. "writing out/mix.wav".
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_what_was_done_and_why_once() {
        let error = Error::io(
            "opening model weights w.safetensors",
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        );
        assert_eq!(
            error.to_string(),
            "opening model weights w.safetensors: No such file"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
