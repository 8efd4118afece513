//! A parser for the subset of ABC notation used by the folk collections: header fields,
//! notes, rests, accidentals, ties, broken rhythm, tuplets, repeats and endings.
