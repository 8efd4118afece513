//! Fetches the music21 wheel from the package registry (through pip), checks it by hash and
//! reads the allowed collections out of it.
