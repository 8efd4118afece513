//! refrain's scorer: the symbolic features of a song that the critic reports and that
//! evaluation compares against real music. The learned critic joins here (see DESIGN.md);
//! this crate never knows how audio is rendered.

#![forbid(unsafe_code)]

pub mod features;

pub use features::{SongFeatures, StemFeatures, song_features};
