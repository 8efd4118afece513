//! Batch request files and shards: the JSON Lines file `refrain batch` reads (one song request
//! per line, named by an `id` that becomes its output folder), the check of every line before any
//! song is written, and the deterministic split of the file over N workers (`--shard I/N`).
//!
//! A shard takes requests by their position in the file: the k-th request line (blank lines are
//! not requests; counting from 0) belongs to shard `k mod N`. So N shards together cover the file
//! exactly once whatever the ids are, and every worker can tell which lines are its own from the
//! file alone.

use crate::Error;
use crate::plan::Request;
use crate::reasoning::Think;
use crate::words;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The longest id accepted: it names a folder, and file systems limit names to 255 bytes.
pub const MAX_ID_BYTES: usize = 200;

/// One worker's part of a request file: requests whose position is `index` modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole file: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// A shard, checked: `count >= 1` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, Error> {
        if count == 0 {
            return Err(Error::Request(
                "a shard count must be at least 1 (--shard I/N with N >= 1)".into(),
            ));
        }
        if index >= count {
            return Err(Error::Request(format!(
                "shard {index}/{count} does not exist: shards count from 0, so I must be below N \
                 (0/{count} to {}/{count})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether the request at `position` (the k-th request line, from 0) is this shard's.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// Whether this is the whole file.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Reads "I/N", e.g. "0/4" for the first of four shards.
    fn from_str(text: &str) -> Result<Shard, Error> {
        let bad = || {
            Error::Request(format!(
                "cannot read the shard '{text}'; write it as I/N, e.g. 0/4 for the first of four \
                 shards (I counts from 0 and must be below N)"
            ))
        };
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse::<usize>().map_err(|_| bad())?;
        let count = count.trim().parse::<usize>().map_err(|_| bad())?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One line of a request file, read and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestLine {
    /// Line number in the file, from 1 (as an editor shows it).
    pub line: usize,
    /// Position among the file's request lines, from 0: what shards split on.
    pub position: usize,
    /// The id, when the line has a readable one (even if something else on it is wrong).
    pub id: Option<String>,
    /// The request, or why the line cannot be used.
    pub parsed: Result<BatchRequest, String>,
}

/// A song request of a batch: the fields of `refrain generate`'s flags and the folder name.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRequest {
    pub id: String,
    pub request: Request,
    /// The line's own thinking level; `None` takes the batch's.
    pub think: Option<Think>,
}

/// The fields a line may hold, spelled as `generate`'s flags and read with the same words.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineFields {
    id: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    style: Option<String>,
    #[serde(default)]
    mood: Option<String>,
    #[serde(default)]
    bpm: Option<f64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    meter: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    bars: Option<u32>,
    #[serde(default, rename = "loop")]
    looped: bool,
    #[serde(default)]
    stems: Option<StemList>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    think: Option<String>,
}

/// Stems as the flag writes them ("drums,bass") or as a JSON list.
#[derive(Deserialize)]
#[serde(untagged)]
enum StemList {
    Text(String),
    List(Vec<String>),
}

/// Checks that an id can name a folder inside the output folder and nothing else.
pub fn check_id(id: &str) -> Result<(), Error> {
    let problem = if id.trim().is_empty() {
        Some("is empty")
    } else if id != id.trim() {
        Some("starts or ends with a space")
    } else if id.contains(['/', '\\']) {
        Some("holds a path separator")
    } else if id == "." || id == ".." || id.starts_with('.') {
        Some("starts with a dot (names starting with a dot are kept for unfinished outputs)")
    } else if id.chars().any(|c| c.is_control()) {
        Some("holds a control character")
    } else if id.len() > MAX_ID_BYTES {
        Some("is longer than 200 bytes")
    } else if id.contains(':') {
        Some("holds a colon, which some file systems refuse")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Request(format!(
            "the id {id:?} {problem}; an id names the output folder DIR/<id>/"
        ))),
        None => Ok(()),
    }
}

/// Reads one request line (without its line break).
pub fn parse_request(text: &str) -> Result<BatchRequest, Error> {
    let fields: LineFields = serde_json::from_str(text).map_err(|e| {
        Error::Request(format!(
            "not a request: {e} (a line is a JSON object such as {{\"id\": \"a\", \"style\": \
             \"lofi\", \"seconds\": 30}})"
        ))
    })?;
    check_id(&fields.id)?;
    if fields.seconds.is_some() && fields.bars.is_some() {
        return Err(Error::Request(
            "give seconds or bars, not both (the length follows from one of them)".into(),
        ));
    }
    if let Some(seconds) = fields.seconds
        && !(seconds.is_finite() && seconds > 0.0)
    {
        return Err(Error::Request(format!(
            "seconds must be a positive number, not {seconds}"
        )));
    }
    let stems = match fields.stems {
        None => None,
        Some(StemList::Text(text)) => Some(
            text.split(',')
                .map(words::stem)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(StemList::List(list)) => Some(
            list.iter()
                .map(|s| words::stem(s))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let request = Request {
        prompt: fields.prompt.unwrap_or_default(),
        style: fields.style.as_deref().map(words::style).transpose()?,
        mood: fields.mood.as_deref().map(words::mood).transpose()?,
        bpm: fields.bpm,
        key: fields.key.as_deref().map(words::key).transpose()?,
        meter: fields.meter.as_deref().map(words::meter).transpose()?,
        seconds: fields.seconds,
        bars: fields.bars,
        looped: fields.looped,
        stems,
        seed: fields.seed.unwrap_or(0),
    };
    let think = fields.think.as_deref().map(words::think).transpose()?;
    Ok(BatchRequest {
        id: fields.id,
        request,
        think,
    })
}

/// The id of a line that may be wrong elsewhere, for reporting it.
fn readable_id(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("id")?.as_str().map(str::to_string)
}

/// Reads every request line of a file. Blank lines are skipped; every other line is a request,
/// usable or not (with the reason). A repeated id is an error on every line after the first
/// that has it.
pub fn read_requests(text: &str) -> Vec<RequestLine> {
    let mut lines = Vec::new();
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut position = 0;
    for (number, raw) in text.lines().enumerate() {
        let line = number + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() {
            continue;
        }
        let mut parsed = parse_request(raw).map_err(words::message);
        let id = match &parsed {
            Ok(request) => Some(request.id.clone()),
            Err(_) => readable_id(raw),
        };
        if let Ok(request) = &parsed {
            if let Some(first) = first_line_of.get(&request.id) {
                parsed = Err(format!(
                    "the id {:?} is already used on line {first}; every id names its own folder",
                    request.id
                ));
            } else {
                first_line_of.insert(request.id.clone(), line);
            }
        }
        lines.push(RequestLine {
            line,
            position,
            id,
            parsed,
        });
        position += 1;
    }
    lines
}

/// The lines a shard takes, in file order.
pub fn shard_lines(lines: &[RequestLine], shard: Shard) -> Vec<RequestLine> {
    lines
        .iter()
        .filter(|l| shard.takes(l.position))
        .cloned()
        .collect()
}

/// How one request of a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its folder is complete (written by this run or an earlier one).
    Ok,
    /// The line could not be used or the song could not be written.
    Error,
}

/// One line of a batch's summary.jsonl: what became of one request. Everything in it follows
/// from the request file and the output folders, so a run that was interrupted and resumed
/// writes the same summary as one that was not; the time each song took varies from run to run
/// and is kept in timing.jsonl instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryLine {
    /// Line number in the request file, from 1.
    pub line: usize,
    pub id: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness_lufs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_peak_dbtp: Option<f64>,
    /// Mean of the critic's overall score of every accepted segment, when a critic judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{Key, Meter, Mood, Stem, Style};
    use std::collections::BTreeSet;

    fn file(lines: usize) -> String {
        (0..lines)
            .map(|i| format!("{{\"id\": \"song-{i}\", \"seed\": {i}}}\n"))
            .collect()
    }

    #[test]
    fn shards_together_cover_the_file_exactly_once() {
        for requests in [0, 1, 2, 7, 30, 101] {
            let lines = read_requests(&file(requests));
            assert_eq!(lines.len(), requests);
            for count in 1..=9 {
                let mut seen = BTreeSet::new();
                let mut total = 0;
                for index in 0..count {
                    let shard = Shard::new(index, count).unwrap();
                    let taken = shard_lines(&lines, shard);
                    // Balanced: no shard holds more than one request more than another.
                    assert!(taken.len() <= requests.div_ceil(count));
                    assert!(taken.len() >= requests / count);
                    total += taken.len();
                    for line in taken {
                        assert!(seen.insert(line.line), "line {} taken twice", line.line);
                    }
                }
                assert_eq!(total, requests);
                assert_eq!(seen, (1..=requests).collect());
            }
        }
    }

    #[test]
    fn blank_lines_are_not_requests_and_shards_split_on_requests() {
        let text = "{\"id\":\"a\"}\n\n   \n{\"id\":\"b\"}\r\n{\"id\":\"c\"}\n";
        let lines = read_requests(text);
        let numbers: Vec<usize> = lines.iter().map(|l| l.line).collect();
        assert_eq!(numbers, [1, 4, 5]);
        let second = shard_lines(&lines, "1/2".parse().unwrap());
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].id.as_deref(), Some("b"));
    }

    #[test]
    fn a_shard_reads_as_i_over_n_and_a_bad_one_says_why() {
        assert_eq!("0/1".parse::<Shard>().unwrap(), Shard::WHOLE);
        assert_eq!(
            " 3/4 ".parse::<Shard>().unwrap(),
            Shard { index: 3, count: 4 }
        );
        assert_eq!(Shard::new(2, 5).unwrap().to_string(), "2/5");
        let message = |text: &str| words::message(text.parse::<Shard>().unwrap_err());
        assert!(message("4/4").contains("below N"), "{}", message("4/4"));
        assert!(message("0/0").contains("at least 1"), "{}", message("0/0"));
        for bad in ["", "3", "a/b", "-1/4", "1/-4", "1/4/2", "1.5/4"] {
            assert!(
                message(bad).contains("write it as I/N"),
                "{bad}: {}",
                message(bad)
            );
        }
    }

    #[test]
    fn a_line_holds_the_fields_of_generates_flags() {
        let request = parse_request(
            r#"{"id": "ad-01", "prompt": "rainy night", "style": "synthwave", "mood": "dark",
                "bpm": 96, "key": "F# minor", "meter": "6/8", "seconds": 12.5, "loop": true,
                "stems": "drums,bass", "seed": 7, "think": "none"}"#,
        )
        .unwrap();
        assert_eq!(request.id, "ad-01");
        assert_eq!(request.think, Some(Think::None));
        let r = request.request;
        assert_eq!(r.prompt, "rainy night");
        assert_eq!(r.style, Some(Style::Synthwave));
        assert_eq!(r.mood, Some(Mood::Dark));
        assert_eq!(r.bpm, Some(96.0));
        assert_eq!(r.key, Key::parse("F# minor"));
        assert_eq!(r.meter, Some(Meter::SixEight));
        assert_eq!(r.seconds, Some(12.5));
        assert!(r.looped);
        assert_eq!(r.stems, Some(vec![Stem::Drums, Stem::Bass]));
        assert_eq!(r.seed, 7);

        let listed = parse_request(r#"{"id": "b", "bars": 8, "stems": ["lead"]}"#).unwrap();
        assert_eq!(listed.request.bars, Some(8));
        assert_eq!(listed.request.stems, Some(vec![Stem::Lead]));
        assert_eq!(listed.request.seed, 0);
        assert_eq!(listed.think, None);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let message = |text: &str| words::message(parse_request(text).unwrap_err());
        assert!(message("not json").contains("not a request"));
        assert!(message(r#"{"style": "lofi"}"#).contains("missing field `id`"));
        assert!(message(r#"{"id": "a", "tempo": 90}"#).contains("unknown field `tempo`"));
        assert!(message(r#"{"id": "a", "style": "polka"}"#).contains("unknown style"));
        assert!(message(r#"{"id": "a", "stems": "drums,voice"}"#).contains("unknown stem"));
        assert!(message(r#"{"id": "a", "seconds": 10, "bars": 4}"#).contains("not both"));
        assert!(message(r#"{"id": "a", "seconds": -3}"#).contains("positive"));
        assert!(message(r#"{"id": "a", "think": "hard"}"#).contains("balanced"));
        assert!(message(r#"{"id": "a", "bpm": "fast"}"#).contains("not a request"));
    }

    #[test]
    fn an_id_must_name_one_folder_inside_the_output() {
        for good in ["a", "ad-01", "Song 7", "曲子_3", "x.y"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " ",
            "a/b",
            "..",
            ".",
            ".hidden",
            "a\\b",
            "tab\there",
            " padded",
            "c:d",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_id(&"x".repeat(MAX_ID_BYTES + 1)).is_err());
    }

    #[test]
    fn a_repeated_id_is_an_error_after_its_first_line_and_bad_lines_keep_their_number() {
        let text = "{\"id\":\"a\"}\n{\"id\":\"b\",\"style\":\"polka\"}\n{\"id\":\"a\"}\nnope\n";
        let lines = read_requests(text);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].parsed.is_ok());
        assert_eq!(lines[1].id.as_deref(), Some("b"));
        assert!(
            lines[1]
                .parsed
                .as_ref()
                .unwrap_err()
                .contains("unknown style")
        );
        assert!(
            lines[2]
                .parsed
                .as_ref()
                .unwrap_err()
                .contains("already used on line 1")
        );
        assert_eq!(lines[3].line, 4);
        assert_eq!(lines[3].id, None);
        assert!(lines[3].parsed.is_err());
    }

    #[test]
    fn a_summary_line_leaves_out_what_it_does_not_know() {
        let line = SummaryLine {
            line: 3,
            id: None,
            status: Status::Error,
            seconds: None,
            loudness_lufs: None,
            true_peak_dbtp: None,
            critic_score: None,
            error: Some("not a request".into()),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"line":3,"id":null,"status":"error","error":"not a request"}"#
        );
        assert_eq!(serde_json::from_str::<SummaryLine>(&text).unwrap(), line);
    }
}
