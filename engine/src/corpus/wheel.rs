//! Fetches the music21 wheel from the package registry (through pip), checks it by hash and
//! reads the allowed collections out of it.
//!
//! Only folders whose licence position is recorded here enter the corpus; every other folder,
//! and any file or tune carrying its own rights statement, becomes a [`Refusal`] with a reason.

use super::abc::{self, TuneText};
use super::{CorpusReport, CorpusTune, SourceItem};
use crate::Error;
use crate::licence::{Licence, Refusal};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MUSIC21_VERSION: &str = "10.5.1";
pub const MUSIC21_WHEEL_SHA256: &str =
    "dc3309498c4c95cebdf8d4f20c868deb6b63bce1d929cad4f51a7ccc982987b1";
const WHEEL_FILE: &str = "music21-10.5.1-py3-none-any.whl";
const CORPUS_PREFIX: &str = "music21/corpus/";

/// A collection refrain may train on, with the publication of the works it transcribes.
struct AllowedCollection {
    folder: &'static str,
    publication: &'static str,
    /// Dates that differ by file, where the collection gathers several sources.
    published_by_file: &'static [(&'static str, &'static str)],
}

const ALLOWED: [AllowedCollection; 4] = [
    AllowedCollection {
        folder: "airdsAirs",
        publication: "Aird's Selection of Scotch, English, Irish and Foreign Airs, 1778-1803",
        published_by_file: &[],
    },
    AllowedCollection {
        folder: "miscFolk",
        publication: "American fife tunes and Northumbrian minstrelsy",
        // The fife tunes come from bandsmen's books of the colonial and Civil War years (the
        // sources the file cites date 1780-1804); Bruce and Stokoe printed theirs in 1882.
        published_by_file: &[
            ("americanfifeopus.abc", "1775-1865"),
            ("northumbrianminstrelsyopus.abc", "1882"),
        ],
    },
    AllowedCollection {
        folder: "oneills1850",
        publication: "O'Neill's Music of Ireland, 1903",
        published_by_file: &[],
    },
    AllowedCollection {
        folder: "ryansMammoth",
        publication: "Ryan's Mammoth Collection, 1883",
        published_by_file: &[],
    },
];

impl AllowedCollection {
    fn published(&self, file: &str) -> String {
        if let Some((_, date)) = self.published_by_file.iter().find(|(f, _)| *f == file) {
            return (*date).to_string();
        }
        // The publication text ends with its date.
        self.publication
            .rsplit(", ")
            .next()
            .unwrap_or(self.publication)
            .to_string()
    }
}

/// Why a folder of the corpus stays out of training data.
fn refusal_reason(folder: &str) -> String {
    match folder {
        "essenFolksong" => "the Essen folksong encodings are licensed for non-commercial use only",
        "bach" => "the Bach chorale encodings are copyright CCARH",
        "palestrina" => "the Palestrina encodings carry a rights-reserved notice",
        "josquin" => "the Josquin encodings are licensed under the GPL",
        "nottingham-dataset" => {
            "the Nottingham dataset's origin is unclear and only one of its files ships"
        }
        _ => "no permissive licence is recorded for this folder",
    }
    .to_string()
}

/// A rights statement in a file or tune that overrides the collection's position.
fn rights_statement(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    const MARKS: [(&str, &str); 6] = [
        ("all rights reserved", "it states all rights reserved"),
        (
            "non-commercial",
            "it is licensed for non-commercial use only",
        ),
        (
            "noncommercial",
            "it is licensed for non-commercial use only",
        ),
        ("copyright", "it carries a copyright notice"),
        ("©", "it carries a copyright notice"),
        ("(c) ", "it carries a copyright notice"),
    ];
    MARKS
        .iter()
        .find(|(mark, _)| lower.contains(mark))
        .map(|(_, reason)| *reason)
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String, Error> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Returns the music21 wheel in `cache_dir`, downloading it with pip when no cached copy
/// matches the pinned hash. A file that does not match is deleted.
pub fn fetch_music21_wheel(cache_dir: &Path) -> Result<PathBuf, Error> {
    if let Some(wheel) = cached_wheel(cache_dir)? {
        return Ok(wheel);
    }
    let wheel = cache_dir.join(WHEEL_FILE);
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::io(format!("creating {}", cache_dir.display()), e))?;
    let output = Command::new("python3")
        .args(["-m", "pip", "download"])
        .arg(format!("music21=={MUSIC21_VERSION}"))
        .args(["--no-deps", "--only-binary=:all:", "-d"])
        .arg(cache_dir)
        .output()
        .map_err(|e| {
            Error::Corpus(format!(
                "python3 could not be started ({e}); install Python 3 with pip to download \
                 the music21 wheel, or place {WHEEL_FILE} in {} by hand",
                cache_dir.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("No module named pip") {
            "pip is not installed for python3"
        } else {
            "pip could not download it"
        };
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(Error::Corpus(format!(
            "the music21 {MUSIC21_VERSION} wheel was not downloaded: {hint} ({})",
            last.trim()
        )));
    }
    if !wheel.is_file() {
        return Err(Error::Corpus(format!(
            "pip finished but {WHEEL_FILE} is not in {}",
            cache_dir.display()
        )));
    }
    let actual = file_sha256(&wheel)?;
    if actual != MUSIC21_WHEEL_SHA256 {
        // A wheel that does not match must not be picked up on the next run.
        let _ = std::fs::remove_file(&wheel);
        return Err(Error::Corpus(format!(
            "the downloaded music21 wheel has sha256 {actual}, not the pinned \
             {MUSIC21_WHEEL_SHA256}; it was deleted"
        )));
    }
    Ok(wheel)
}

/// The cached wheel in `cache_dir` if its hash matches; a mismatching file is deleted so
/// that it is never read.
fn cached_wheel(cache_dir: &Path) -> Result<Option<PathBuf>, Error> {
    let wheel = cache_dir.join(WHEEL_FILE);
    if !wheel.is_file() {
        return Ok(None);
    }
    if file_sha256(&wheel)? == MUSIC21_WHEEL_SHA256 {
        return Ok(Some(wheel));
    }
    std::fs::remove_file(&wheel)
        .map_err(|e| Error::io(format!("removing the stale {}", wheel.display()), e))?;
    Ok(None)
}

/// Reads the corpus out of the music21 wheel at `wheel`.
pub fn load_corpus(wheel: &Path) -> Result<CorpusReport, Error> {
    let file =
        File::open(wheel).map_err(|e| Error::io(format!("opening {}", wheel.display()), e))?;
    load_corpus_from_zip(std::io::BufReader::new(file))
}

/// Reads the corpus out of any zip laid out like the wheel (`music21/corpus/<folder>/...`).
pub fn load_corpus_from_zip<R: Read + Seek>(reader: R) -> Result<CorpusReport, Error> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| Error::Corpus(format!("the music21 wheel is not a readable zip: {e}")))?;
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in archive.file_names() {
        let Some(rest) = name.strip_prefix(CORPUS_PREFIX) else {
            continue;
        };
        let Some((folder, path)) = rest.split_once('/') else {
            continue;
        };
        let files = folders.entry(folder.to_string()).or_default();
        if !path.is_empty() && !path.ends_with('/') {
            files.push(path.to_string());
        }
    }
    let mut texts: Vec<(String, String, String)> = Vec::new();
    let mut report = CorpusReport::default();
    for (folder, files) in &mut folders {
        if !ALLOWED.iter().any(|a| a.folder == folder) {
            report.refused.push(Refusal {
                item: format!("{CORPUS_PREFIX}{folder}"),
                reason: refusal_reason(folder),
            });
            continue;
        }
        files.sort();
        for path in files.iter().filter(|p| p.ends_with(".abc")) {
            let full = format!("{CORPUS_PREFIX}{folder}/{path}");
            let mut entry = archive.by_name(&full).map_err(|e| {
                Error::Corpus(format!("{full} could not be read from the wheel: {e}"))
            })?;
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(format!("decompressing {full}"), e))?;
            // Some transcriptions are Latin-1; a lossy read keeps the notes, which are ASCII.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            texts.push((folder.clone(), path.clone(), text));
        }
    }
    let parsed = load_corpus_from_texts(
        texts
            .iter()
            .map(|(c, f, t)| (c.as_str(), f.as_str(), t.as_str())),
    );
    report.tunes = parsed.tunes;
    report.refused.extend(parsed.refused);
    report.skipped = parsed.skipped;
    Ok(report)
}

/// Parses (collection, file, text) triples; collections not on the allowed list are refused.
pub fn load_corpus_from_texts<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> CorpusReport {
    let mut report = CorpusReport::default();
    let mut refused_folders = Vec::new();
    for (collection, file, text) in files {
        let Some(allowed) = ALLOWED.iter().find(|a| a.folder == collection) else {
            if !refused_folders.contains(&collection) {
                refused_folders.push(collection);
                report.refused.push(Refusal {
                    item: format!("{CORPUS_PREFIX}{collection}"),
                    reason: refusal_reason(collection),
                });
            }
            continue;
        };
        let (header, tunes) = abc::split_tunes(text);
        if let Some(reason) = rights_statement(header) {
            report.refused.push(Refusal {
                item: format!("{collection}/{file}"),
                reason: format!("the file is refused because {reason}"),
            });
            continue;
        }
        for TuneText { number, text } in tunes {
            let label = format!("{collection}/{file} X:{}", number.unwrap_or(0));
            if let Some(reason) = rights_statement(text) {
                report.refused.push(Refusal {
                    item: label,
                    reason: format!("the tune is refused because {reason}"),
                });
                continue;
            }
            match abc::parse_tune(text) {
                Ok(tune) => {
                    for (reason, n) in &tune.approximations {
                        *report.skipped.entry(reason.clone()).or_insert(0) += n;
                    }
                    report.tunes.push(CorpusTune {
                        source: SourceItem {
                            collection: collection.to_string(),
                            file: file.to_string(),
                            number: tune.number,
                            title: tune.title,
                            transcriber: tune.transcriber,
                            published: allowed.published(file),
                            licence: Licence::PublicDomain,
                            content_sha256: sha256_hex(text.as_bytes()),
                        },
                        meter: tune.meter,
                        key: tune.key,
                        tempo_bpm: tune.tempo_bpm,
                        bars: tune.bars,
                        melody: tune.melody,
                    });
                }
                Err(skip) => {
                    *report
                        .skipped
                        .entry(format!("tune skipped: {}", skip.0))
                        .or_insert(0) += 1;
                }
            }
        }
    }
    report.tunes.sort_by(|a, b| {
        (&a.source.collection, &a.source.file, a.source.number).cmp(&(
            &b.source.collection,
            &b.source.file,
            b.source.number,
        ))
    });
    report
        .refused
        .sort_by(|a, b| (&a.item, &a.reason).cmp(&(&b.item, &b.reason)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    const REEL: &str = "X:2\nT:Second\nZ:A. Transcriber\nM:C|\nL:1/8\nK:D\n\
        |:DFAF DFAF|GBdB GBdB:|\nafdf afdf|gece gece||\n";
    const JIG: &str = "X:1\nT:First\nM:6/8\nL:1/8\nK:G\nGAB cde|dBG AFD|GAB cde|dBG G3|]\n";

    fn wheel_fixture() -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut bytes);
            let options = zip::write::SimpleFileOptions::default();
            let files = [
                ("music21/__init__.py", "".to_string()),
                (
                    "music21/corpus/oneills1850/0001-0002.abc",
                    format!("{REEL}\n{JIG}"),
                ),
                (
                    "music21/corpus/oneills1850/rights.abc",
                    format!("% Copyright 2001 someone\n{JIG}"),
                ),
                ("music21/corpus/bach/bwv1.mxl", "x".to_string()),
                ("music21/corpus/essenFolksong/han1.abc", JIG.to_string()),
                ("music21/corpus/mystery/a.abc", JIG.to_string()),
                (
                    "music21/corpus/miscFolk/northumbrianminstrelsyopus.abc",
                    format!("{}\n\nX:3\nT:Bad\nM:9/8\nK:G\nG9|G9|G9|G9|\n", JIG),
                ),
            ];
            for (name, text) in files {
                zip.start_file(name, options).unwrap();
                zip.write_all(text.as_bytes()).unwrap();
            }
            zip.finish().unwrap();
        }
        bytes.into_inner()
    }

    #[test]
    fn allowed_collections_load_and_others_are_refused() {
        let report = load_corpus_from_zip(Cursor::new(wheel_fixture())).unwrap();
        let names: Vec<(&str, &str, u32)> = report
            .tunes
            .iter()
            .map(|t| {
                (
                    t.source.collection.as_str(),
                    t.source.file.as_str(),
                    t.source.number,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("miscFolk", "northumbrianminstrelsyopus.abc", 1),
                ("oneills1850", "0001-0002.abc", 1),
                ("oneills1850", "0001-0002.abc", 2),
            ]
        );
        let reel = &report.tunes[2];
        assert_eq!(reel.source.published, "1903");
        assert_eq!(reel.source.transcriber.as_deref(), Some("A. Transcriber"));
        assert_eq!(reel.source.licence, Licence::PublicDomain);
        assert_eq!(
            reel.source.content_sha256,
            sha256_hex(REEL.trim_end().as_bytes())
        );
        assert_eq!(reel.bars, 6);
        assert_eq!(report.tunes[0].source.published, "1882");
        let refused: Vec<&str> = report.refused.iter().map(|r| r.item.as_str()).collect();
        assert_eq!(
            refused,
            [
                "music21/corpus/bach",
                "music21/corpus/essenFolksong",
                "music21/corpus/mystery",
                "oneills1850/rights.abc",
            ]
        );
        assert!(report.refused[1].reason.contains("non-commercial"));
        assert!(report.refused[2].reason.contains("no permissive licence"));
        assert_eq!(
            report.skipped.get("tune skipped: unsupported meter 9/8"),
            Some(&1)
        );
    }

    #[test]
    fn loading_is_deterministic() {
        let a = load_corpus_from_zip(Cursor::new(wheel_fixture())).unwrap();
        let b = load_corpus_from_zip(Cursor::new(wheel_fixture())).unwrap();
        assert_eq!(a.tunes, b.tunes);
        assert_eq!(a.refused, b.refused);
        assert_eq!(a.skipped, b.skipped);
    }

    #[test]
    fn a_tune_with_its_own_rights_statement_is_refused() {
        let text =
            format!("{JIG}\nX:9\nT:Modern\nN:All Rights Reserved\nM:6/8\nK:G\nG6|G6|G6|G6|\n");
        let report = load_corpus_from_texts([("ryansMammoth", "x.abc", text.as_str())]);
        assert_eq!(report.tunes.len(), 1);
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].item, "ryansMammoth/x.abc X:9");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = load_corpus_from_zip(Cursor::new(b"not a zip".to_vec())).unwrap_err();
        assert!(err.to_string().contains("not a readable zip"));
    }

    #[test]
    fn a_stale_cached_wheel_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(WHEEL_FILE);
        std::fs::write(&stale, b"stale").unwrap();
        assert_eq!(cached_wheel(dir.path()).unwrap(), None);
        assert!(!stale.exists());
        assert_eq!(cached_wheel(dir.path()).unwrap(), None);
    }

    /// Reads the real wheel: set REFRAIN_MUSIC21_WHEEL to its path.
    #[test]
    #[ignore = "needs the music21 wheel on disk"]
    fn the_real_wheel_gives_thousands_of_tunes() {
        let path = std::env::var("REFRAIN_MUSIC21_WHEEL")
            .unwrap_or_else(|_| "/tmp/m21/music21-10.5.1-py3-none-any.whl".to_string());
        assert_eq!(file_sha256(Path::new(&path)).unwrap(), MUSIC21_WHEEL_SHA256);
        let started = std::time::Instant::now();
        let report = load_corpus(Path::new(&path)).unwrap();
        let elapsed = started.elapsed();
        let mut by_collection: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &report.tunes {
            *by_collection
                .entry(t.source.collection.as_str())
                .or_default() += 1;
        }
        eprintln!(
            "load_corpus: {elapsed:?}, {} tunes {by_collection:?}",
            report.tunes.len()
        );
        for (reason, n) in &report.skipped {
            eprintln!("  {n:6}  {reason}");
        }
        for r in &report.refused {
            eprintln!("  refused {}: {}", r.item, r.reason);
        }
        assert!(report.tunes.len() > 3000);
    }
}
