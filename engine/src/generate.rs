//! The whole `refrain generate` path: plan -> lead sheet -> compose (the arranger stands in
//! until the DiT lands) -> MIDI and audio -> an output folder written all at once.
//!
//! The folder is assembled under a temporary name beside the target and renamed into place
//! only when every file is written, so a failure never leaves a half-written folder.

use crate::Error;
use crate::compose::arranger;
use crate::licence::Licence;
use crate::midi;
use crate::music::Song;
use crate::plan::{self, Plan, Request, stage_rng};
use crate::reasoning::{Thinking, TraceEvent};
use crate::render::{self, RenderOptions, RenderedSong};
use crate::writer::{self, Models, SegmentRecord, WriterSettings};
use burn::prelude::Backend;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// Version written into every manifest.
pub const SOFTWARE: &str = concat!("refrain ", env!("CARGO_PKG_VERSION"));

/// Which composer wrote the notes; recorded in the manifest and the licences.
pub const COMPOSER: &str = "refrain DiT (latent diffusion transformer over stem-bar tokens, \
                            decoded by the bar autoencoder), following refrain's own plan, \
                            form and chord-progression writer";

/// A finished song in memory, ready to be written out.
pub struct Generation {
    pub request: Request,
    pub plan: Plan,
    pub song: Song,
    /// How each segment was written.
    pub segments: Vec<SegmentRecord>,
    /// Every decision of the reasoning loop (trace.jsonl).
    pub trace: Vec<TraceEvent>,
    /// The weights used, with their hashes.
    pub models: Vec<ModelEntry>,
    pub rendered: RenderedSong,
    pub frames: u64,
    pub render_options: RenderOptions,
    /// Who made each stem's sound, under which licence.
    pub instrument_licences: Vec<LicenceEntry>,
}

/// Where one part of the output came from and under which licence.
#[derive(Clone, Debug, Serialize)]
pub struct LicenceEntry {
    pub part: String,
    pub source: String,
    /// `Licence::id`, e.g. "public-domain", "CC-BY".
    pub licence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
}

impl LicenceEntry {
    pub fn new(part: String, source: String, licence: &Licence) -> LicenceEntry {
        let attribution = match licence {
            Licence::CcBy { attribution } => Some(attribution.clone()),
            _ => None,
        };
        LicenceEntry {
            part,
            source,
            licence: licence.id().to_string(),
            attribution,
        }
    }
}

/// A weights file used to make the output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub file: String,
    pub sha256: String,
}

/// A file in the output folder with its hash.
#[derive(Debug, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// manifest.json: what was asked, what was made, and where every part came from.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub software: &'static str,
    pub request: Request,
    pub seed: u64,
    pub seconds: f64,
    pub frames: u64,
    pub sample_rate: u32,
    pub bit_depth: u16,
    pub loudness_lufs: f64,
    pub true_peak_dbtp: f64,
    /// Gain from the mix bus (the sum of the stems) into the master's limiter, dB.
    pub master_gain_db: f64,
    pub composer: &'static str,
    pub models: Vec<ModelEntry>,
    pub licences: Vec<LicenceEntry>,
    pub files: Vec<FileEntry>,
}

/// Plans a request and arranges it with the rule-based arranger: the data source the
/// models learn from (and a baseline), not what `generate` writes with.
pub fn arrange_request(request: &Request) -> Result<(Plan, Song), Error> {
    let mut plan = plan::plan(request)?;
    let sheet = plan::lead_sheet(&mut plan);
    let mut arrange_rng = stage_rng(request.seed, "arrange");
    let song = arranger::arrange(&sheet, &plan.stems, &mut arrange_rng);
    Ok((plan, song))
}

/// Plans a request and writes every stem with the models, thinking as `thinking` says.
pub fn compose<B: Backend>(
    request: &Request,
    models: &Models<B>,
    settings: &WriterSettings,
    thinking: &mut Thinking<'_>,
) -> Result<(Plan, writer::Written), Error> {
    let (plan, sheet) = plan::plan_for_models(request, &models.dit_config.plan_labelling_by_style)?;
    let written = writer::write_song(models, &plan, &sheet, settings, thinking)?;
    Ok((plan, written))
}

/// Plans, writes (with the models) and renders a request.
pub fn generate<B: Backend>(
    request: &Request,
    models: &Models<B>,
    settings: &WriterSettings,
    thinking: &mut Thinking<'_>,
    render_options: &RenderOptions,
    instruments: &render::Instruments,
) -> Result<Generation, Error> {
    let (plan, written) = compose(request, models, settings, thinking)?;
    let song = written.song;
    let mut model_entries = models.entries.clone();
    if thinking.settings.use_critic
        && let Some(critic) = &thinking.critic
    {
        model_entries.extend(critic.models());
    }
    let frames = (plan.seconds * f64::from(render_options.sample_rate)).round() as u64;
    let rendered = render::render_song_with(&song, frames, render_options, instruments)?;
    let instrument_licences = instrument_licences(&song, instruments);
    Ok(Generation {
        request: request.clone(),
        plan,
        song,
        segments: written.segments,
        trace: written.trace,
        models: model_entries,
        rendered,
        frames,
        render_options: render_options.clone(),
        instrument_licences,
    })
}

/// The licence of every instrument that played `song`.
pub fn instrument_licences(song: &Song, instruments: &render::Instruments) -> Vec<LicenceEntry> {
    song.stems
        .iter()
        .map(|track| {
            let part = format!("instrument for {}", track.stem);
            match instruments.bank_for(track.instrument) {
                Some(bank) => {
                    let patch = bank.resolve(render::soundfont::gm_patch(track.instrument));
                    LicenceEntry::new(
                        part,
                        format!(
                            "SoundFont '{}' preset {}:{} (for {}), from {}, sha256 {}",
                            bank.name(),
                            patch.bank,
                            patch.preset,
                            track.instrument.name(),
                            bank.source(),
                            bank.sha256()
                        ),
                        bank.licence(),
                    )
                }
                None => LicenceEntry::new(
                    part,
                    format!("built-in synthesiser: {}", track.instrument.name()),
                    &Licence::ProjectOwn,
                ),
            }
        })
        .collect()
}

/// Whether the stems get a WAV each beside the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StemFiles {
    Written,
    /// Only mix.wav (`refrain render --mix-only`).
    Skipped,
}

/// Writes mix.wav and (unless `stems` is `Skipped`) stems/<stem>.wav into `dir` with a RIFF INFO chunk (title, software,
/// licence line) and, for a loop, the loop points; returns the paths written.
pub fn write_audio_files(
    dir: &Path,
    rendered: &RenderedSong,
    options: &RenderOptions,
    title: &str,
    stems: StemFiles,
) -> Result<Vec<PathBuf>, Error> {
    let stems_dir = dir.join("stems");
    if stems == StemFiles::Written {
        fs::create_dir_all(&stems_dir)
            .map_err(|e| Error::io(format!("creating {}", stems_dir.display()), e))?;
    }
    let frames = rendered.mix.frames() as u32;
    let wav = |part: &str| render::WavOptions {
        bits: options.bit_depth,
        info: Some(render::WavInfo {
            title: format!("{title} ({part})"),
            software: SOFTWARE.into(),
            comment: "made with refrain; licences in manifest.json".into(),
        }),
        looped: (options.looped && frames > 0).then_some(render::WavLoop {
            start: 0,
            end: frames - 1,
        }),
    };
    let mut jobs = vec![(dir.join("mix.wav"), &rendered.mix, wav("mix"))];
    let written_stems = match stems {
        StemFiles::Written => &rendered.stems[..],
        StemFiles::Skipped => &[],
    };
    for (stem, buffer) in written_stems {
        let path = stems_dir.join(format!("{stem}.wav"));
        jobs.push((path, buffer, wav(&stem.to_string())));
    }
    // Encoding is most of the time and each file is independent: two writers, taking
    // every other file.
    let write = |parity: usize| -> Result<(), Error> {
        jobs.iter()
            .skip(parity)
            .step_by(2)
            .try_for_each(|(path, buffer, options)| render::write_wav_with(path, buffer, options))
    };
    let (second, first) = render::on_two_threads(|| write(1), || write(0));
    first.and(second)?;
    Ok(jobs.into_iter().map(|(path, _, _)| path).collect())
}

impl Generation {
    fn licences(&self) -> Vec<LicenceEntry> {
        let mut entries = vec![LicenceEntry::new(
            "composition (plan, chords, melody, arrangement)".into(),
            COMPOSER.into(),
            &Licence::ProjectOwn,
        )];
        entries.extend(self.instrument_licences.iter().cloned());
        entries
    }

    /// Writes mix.wav, stems/<stem>.wav, song.mid, plan.json, trace.jsonl and manifest.json
    /// into `out`. An existing non-empty `out` is an error unless `overwrite` is set.
    pub fn write_to(&self, out: &Path, overwrite: bool) -> Result<(), Error> {
        check_output_dir(out, overwrite)?;
        let staging = staging_dir(out)?;
        let result = self.write_files(&staging);
        let result = result.and_then(|()| move_into_place(&staging, out));
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    fn write_files(&self, dir: &Path) -> Result<(), Error> {
        let title = format!(
            "{} in {}, {} bpm, seed {}",
            self.plan.style, self.plan.key_name, self.plan.tempo_bpm, self.request.seed
        );
        let mut files = write_audio_files(
            dir,
            &self.rendered,
            &self.render_options,
            &title,
            StemFiles::Written,
        )?;
        let midi_path = dir.join("song.mid");
        write_file(&midi_path, &midi::write_midi(&self.song))?;
        files.push(midi_path);
        let plan_path = dir.join("plan.json");
        write_file(&plan_path, &to_json_pretty(&self.plan)?)?;
        files.push(plan_path);
        let trace_path = dir.join("trace.jsonl");
        let mut trace = Vec::new();
        for line in &self.trace {
            trace.extend(serde_json::to_vec(line).map_err(json_error)?);
            trace.push(b'\n');
        }
        write_file(&trace_path, &trace)?;
        files.push(trace_path);

        let mut entries = Vec::new();
        for path in &files {
            let bytes =
                fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            entries.push(FileEntry {
                path: path
                    .strip_prefix(dir)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .replace('\\', "/"),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
        }
        let manifest = Manifest {
            software: SOFTWARE,
            request: self.request.clone(),
            seed: self.request.seed,
            seconds: self.plan.seconds,
            frames: self.frames,
            sample_rate: self.render_options.sample_rate,
            bit_depth: self.render_options.bit_depth,
            loudness_lufs: round_to(self.rendered.loudness_lufs, 2),
            true_peak_dbtp: round_to(self.rendered.true_peak_dbtp, 2),
            master_gain_db: round_to(self.rendered.master_gain_db, 2),
            composer: COMPOSER,
            models: self.models.clone(),
            licences: self.licences(),
            files: entries,
        };
        write_file(&dir.join("manifest.json"), &to_json_pretty(&manifest)?)
    }
}

fn round_to(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// Lower-case hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Request(format!("could not serialise JSON: {e}"))
}

/// Pretty JSON with a trailing newline.
pub fn to_json_pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(json_error)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Refuses to replace a folder that holds something, unless asked to.
pub fn check_output_dir(out: &Path, overwrite: bool) -> Result<(), Error> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() && !overwrite {
                return Err(Error::Request(format!(
                    "{} already exists and is not empty; choose another --out or pass --force to \
                     replace it",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if out.is_file() => Err(Error::io(
            format!("{} is a file, not a folder", out.display()),
            e,
        )),
        Err(e) => Err(Error::io(format!("reading {}", out.display()), e)),
    }
}

/// A fresh folder beside `out` to assemble the output in.
pub fn staging_dir(out: &Path) -> Result<PathBuf, Error> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| Error::io(format!("clearing {}", staging.display()), e))?;
    }
    fs::create_dir(&staging)
        .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
    Ok(staging)
}

/// Renames the finished staging folder to `out`, replacing an old `out` if there is one.
pub fn move_into_place(staging: &Path, out: &Path) -> Result<(), Error> {
    if out.exists() {
        fs::remove_dir_all(out)
            .map_err(|e| Error::io(format!("replacing {}", out.display()), e))?;
    }
    fs::rename(staging, out).map_err(|e| {
        Error::io(
            format!("moving {} to {}", staging.display(), out.display()),
            e,
        )
    })
}
