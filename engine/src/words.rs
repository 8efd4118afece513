//! The words of a request as a user types them (a style, a mood, a key, a meter, stems, a
//! thinking level), read with an error that says what would have been accepted. One reader per
//! field, shared by `refrain generate`'s flags and the lines of a `refrain batch` file, so both
//! accept the same words and explain a mistake the same way.

use crate::Error;
use crate::music::{Key, Meter, Mood, Stem, Style};
use crate::reasoning::Think;

/// A style: lofi, synthwave, rock, ambient, cinematic, chiptune, jazz or folk.
pub fn style(text: &str) -> Result<Style, Error> {
    Style::parse(text).ok_or_else(|| {
        Error::Request(format!(
            "unknown style '{text}'; choose one of lofi, synthwave, rock, ambient, cinematic, \
             chiptune, jazz, folk"
        ))
    })
}

/// A mood, e.g. calm or dark.
pub fn mood(text: &str) -> Result<Mood, Error> {
    Mood::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Mood::ALL.iter().map(|m| m.name()).collect();
        Error::Request(format!(
            "unknown mood '{text}'; choose one of {}",
            names.join(", ")
        ))
    })
}

/// A key, e.g. "A minor", "D major", "F# dorian" or "Bb".
pub fn key(text: &str) -> Result<Key, Error> {
    Key::parse(text).ok_or_else(|| {
        Error::Request(format!(
            "cannot read the key '{text}'; write it like \"A minor\", \"D major\", \"F# dorian\" \
             or \"Bb\""
        ))
    })
}

/// A meter: 4/4, 3/4 or 6/8.
pub fn meter(text: &str) -> Result<Meter, Error> {
    Meter::parse(text)
        .ok_or_else(|| Error::Request(format!("unsupported meter '{text}'; use 4/4, 3/4 or 6/8")))
}

/// One stem: drums, bass, chords, lead or texture.
pub fn stem(text: &str) -> Result<Stem, Error> {
    Stem::parse(text).ok_or_else(|| {
        Error::Request(format!(
            "unknown stem '{text}'; stems are drums, bass, chords, lead, texture"
        ))
    })
}

/// A thinking level: none, fast, balanced or deep.
pub fn think(text: &str) -> Result<Think, Error> {
    text.parse()
}

/// The message of a request error without the "request: " of its display, for places (such as
/// a flag parser) that add their own context.
pub fn message(error: Error) -> String {
    match error {
        Error::Request(message) => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_and_a_wrong_one_lists_the_choices() {
        assert_eq!(style("Lofi").unwrap(), Style::Lofi);
        assert_eq!(mood("dark").unwrap(), Mood::Dark);
        assert_eq!(key("A minor").unwrap(), Key::parse("A minor").unwrap());
        assert_eq!(meter("6/8").unwrap(), Meter::SixEight);
        assert_eq!(stem("bass").unwrap(), Stem::Bass);
        assert_eq!(think("none").unwrap(), Think::None);
        assert!(message(style("polka").unwrap_err()).contains("synthwave"));
        assert!(message(mood("grumpy").unwrap_err()).contains("calm"));
        assert!(message(key("H flat").unwrap_err()).contains("A minor"));
        assert!(message(meter("5/4").unwrap_err()).contains("6/8"));
        assert!(message(stem("vocals").unwrap_err()).contains("texture"));
        assert!(message(think("hard").unwrap_err()).contains("balanced"));
    }
}
