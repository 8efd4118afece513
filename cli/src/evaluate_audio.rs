//! `refrain evaluate audio`: the figures in docs/AUDIO.md. Songs across every style are
//! arranged (the audio path does not depend on which composer wrote the notes), rendered and
//! checked the way a distributor would: integrated loudness and true peak measured by a
//! single `ebur128` meter on the 24-bit samples that go into the file, clipped samples, and
//! duration to the sample. Loops are checked at the wrap: the jump in level and spectral
//! centroid from the loop's last window to its first, against the jumps between neighbouring
//! windows inside the loop.

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use refrain_engine::generate;
use refrain_engine::music::Style;
use refrain_engine::plan::Request;
use refrain_engine::render::{self, RenderOptions, StereoBuffer};
use rustfft::{FftPlanner, num_complex::Complex};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct EvaluateAudioArgs {
    /// Songs to render, spread evenly over the styles (30 to 180 s each).
    #[arg(long, default_value_t = 100)]
    songs: usize,
    /// Loops to render and check at the wrap (8 or 16 bars each).
    #[arg(long, default_value_t = 24)]
    loops: usize,
    /// Write the full report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct SongCheck {
    style: Style,
    seconds: f64,
    frames_requested: u64,
    frames_written: u64,
    loudness_lufs: f64,
    true_peak_dbtp: f64,
    clipped_samples: usize,
    render_seconds: f64,
    passed: bool,
}

#[derive(Serialize)]
struct LoopCheck {
    style: Style,
    bars: u32,
    seconds: f64,
    loudness_lufs: f64,
    true_peak_dbtp: f64,
    /// |level difference| across the wrap, dB, and the largest and 95th-percentile
    /// differences between neighbouring windows inside the loop.
    wrap_level_db: f64,
    inside_level_db_max: f64,
    inside_level_db_p95: f64,
    /// |spectral-centroid difference| across the wrap, Hz, and inside the loop.
    wrap_centroid_hz: f64,
    inside_centroid_hz_max: f64,
    inside_centroid_hz_p95: f64,
    passed: bool,
}

#[derive(Serialize)]
struct Report {
    command: String,
    songs: Vec<SongCheck>,
    loops: Vec<LoopCheck>,
    songs_passed: usize,
    loops_passed: usize,
    loudness_min: f64,
    loudness_max: f64,
    true_peak_max: f64,
    clipped_samples: usize,
    /// Median render time per minute of audio, seconds (the machine was otherwise idle only
    /// if nothing else ran; see docs/AUDIO.md for the bench).
    median_render_seconds_per_minute: f64,
}

/// The 24-bit samples a WAV file holds, back as floats.
fn as_written(buffer: &StereoBuffer) -> StereoBuffer {
    StereoBuffer {
        sample_rate: buffer.sample_rate,
        samples: buffer
            .samples
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * 8_388_607.0).round() / 8_388_607.0)
            .collect(),
    }
}

fn request(index: usize, looped: bool) -> Request {
    let style = Style::ALL[index % Style::ALL.len()];
    let mut request = crate::evaluate::evaluation_request(index, style);
    if looped {
        request.looped = true;
        request.seconds = None;
        request.bars = Some(if index.is_multiple_of(2) { 8 } else { 16 });
    } else {
        request.seconds = Some(30.0 + ((index * 37) % 151) as f64);
    }
    request
}

const WINDOW: usize = 1024;

/// Level (dB) and spectral centroid (Hz) of consecutive 1024-frame windows of the mono
/// mixdown, from `start` frame on.
fn window_features(samples: &[f32], rate: f32, windows: usize, start: usize) -> Vec<(f64, f64)> {
    let fft = FftPlanner::<f32>::new().plan_fft_forward(WINDOW);
    let hann: Vec<f32> = (0..WINDOW)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / WINDOW as f32).cos())
        .collect();
    let frames = samples.len() / 2;
    (0..windows)
        .map(|w| {
            let mut bins: Vec<Complex<f32>> = (0..WINDOW)
                .map(|i| {
                    let f = (start + w * WINDOW + i) % frames;
                    Complex::new((samples[f * 2] + samples[f * 2 + 1]) * 0.5 * hann[i], 0.0)
                })
                .collect();
            let power: f64 = bins.iter().map(|c| f64::from(c.re * c.re)).sum::<f64>();
            fft.process(&mut bins);
            let (mut weighted, mut total) = (0.0f64, 0.0f64);
            for (k, c) in bins.iter().enumerate().take(WINDOW / 2).skip(1) {
                let magnitude = f64::from(c.norm());
                weighted += magnitude * k as f64 * f64::from(rate) / WINDOW as f64;
                total += magnitude;
            }
            (
                10.0 * (power / WINDOW as f64 + 1e-12).log10(),
                weighted / total.max(1e-12),
            )
        })
        .collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn check_loop(index: usize) -> Result<LoopCheck> {
    let request = request(index, true);
    let (plan, song) = generate::arrange_request(&request)?;
    let options = RenderOptions {
        looped: true,
        ..RenderOptions::default()
    };
    let frames = (plan.seconds * f64::from(options.sample_rate)).round() as u64;
    let rendered = render::render_song(&song, frames, &options)?;
    let mix = as_written(&rendered.mix);
    let (loudness, peak) = render::master::measure(&mix)?;
    let frames = mix.frames();
    // Windows tile the loop from the wrap on: window 0 starts at the loop's start, the last
    // one ends at its end, and the pair (last, 0) straddles the wrap.
    let windows = frames / WINDOW;
    let offset = frames - windows * WINDOW;
    let features = window_features(&mix.samples, mix.sample_rate as f32, windows, offset);
    let wrap_features = window_features(&mix.samples, mix.sample_rate as f32, 2, frames - WINDOW);
    let mut level_steps: Vec<f64> = features
        .windows(2)
        .map(|w| (w[0].0 - w[1].0).abs())
        .collect();
    let mut centroid_steps: Vec<f64> = features
        .windows(2)
        .map(|w| (w[0].1 - w[1].1).abs())
        .collect();
    let wrap_level = (wrap_features[0].0 - wrap_features[1].0).abs();
    let wrap_centroid = (wrap_features[0].1 - wrap_features[1].1).abs();
    let level_max = percentile(&mut level_steps, 1.0);
    let centroid_max = percentile(&mut centroid_steps, 1.0);
    Ok(LoopCheck {
        style: plan.style,
        bars: plan.bars,
        seconds: plan.seconds,
        loudness_lufs: loudness.unwrap_or(-70.0),
        true_peak_dbtp: peak.unwrap_or(-70.0),
        wrap_level_db: wrap_level,
        inside_level_db_max: level_max,
        inside_level_db_p95: percentile(&mut level_steps, 0.95),
        wrap_centroid_hz: wrap_centroid,
        inside_centroid_hz_max: centroid_max,
        inside_centroid_hz_p95: percentile(&mut centroid_steps, 0.95),
        passed: wrap_level <= level_max && wrap_centroid <= centroid_max,
    })
}

fn check_song(index: usize) -> Result<SongCheck> {
    let request = request(index, false);
    let (plan, song) = generate::arrange_request(&request)?;
    let options = RenderOptions::default();
    let frames = (plan.seconds * f64::from(options.sample_rate)).round() as u64;
    let started = Instant::now();
    let rendered = render::render_song(&song, frames, &options)?;
    let render_seconds = started.elapsed().as_secs_f64();
    let mix = as_written(&rendered.mix);
    let (loudness, peak) = render::master::measure(&mix)?;
    let (loudness, peak) = (loudness.unwrap_or(-70.0), peak.unwrap_or(-70.0));
    let clipped = mix.samples.iter().filter(|s| s.abs() >= 1.0).count();
    let frames_written = mix.frames() as u64;
    let stems_exact = rendered
        .stems
        .iter()
        .all(|(_, s)| s.frames() as u64 == frames);
    Ok(SongCheck {
        style: plan.style,
        seconds: plan.seconds,
        frames_requested: frames,
        frames_written,
        loudness_lufs: loudness,
        true_peak_dbtp: peak,
        clipped_samples: clipped,
        render_seconds,
        passed: (loudness + 14.0).abs() <= 0.5
            && peak <= -1.0
            && clipped == 0
            && frames_written == frames
            && stems_exact,
    })
}

pub fn run(args: EvaluateAudioArgs) -> Result<()> {
    let bar = ProgressBar::new((args.songs + args.loops) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} (eta {eta})")
            .expect("a valid template"),
    );
    let mut songs = Vec::new();
    for index in 0..args.songs {
        bar.set_message("songs");
        songs.push(check_song(index)?);
        bar.inc(1);
    }
    let mut loops = Vec::new();
    for index in 0..args.loops {
        bar.set_message("loops");
        loops.push(check_loop(index)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut per_minute: Vec<f64> = songs
        .iter()
        .map(|s| s.render_seconds / (s.seconds / 60.0))
        .collect();
    let loudness = songs.iter().map(|s| s.loudness_lufs);
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        songs_passed: songs.iter().filter(|s| s.passed).count(),
        loops_passed: loops.iter().filter(|l| l.passed).count(),
        loudness_min: loudness.clone().fold(f64::INFINITY, f64::min),
        loudness_max: loudness.fold(f64::NEG_INFINITY, f64::max),
        true_peak_max: songs
            .iter()
            .map(|s| s.true_peak_dbtp)
            .chain(loops.iter().map(|l| l.true_peak_dbtp))
            .fold(f64::NEG_INFINITY, f64::max),
        clipped_samples: songs.iter().map(|s| s.clipped_samples).sum(),
        median_render_seconds_per_minute: if per_minute.is_empty() {
            0.0
        } else {
            percentile(&mut per_minute, 0.5)
        },
        songs,
        loops,
    };
    println!(
        "songs: {}/{} pass (loudness {:.2} to {:.2} LUFS, true peak max {:.2} dBTP, {} clipped samples, \
         median {:.2} s to render a minute)",
        report.songs_passed,
        report.songs.len(),
        report.loudness_min,
        report.loudness_max,
        report.true_peak_max,
        report.clipped_samples,
        report.median_render_seconds_per_minute
    );
    println!(
        "loops: {}/{} pass (wrap jump no larger than the largest between neighbouring windows)",
        report.loops_passed,
        report.loops.len()
    );
    for l in &report.loops {
        println!(
            "  {} {} bars: level jump {:.2} dB (inside max {:.2}, p95 {:.2}); centroid jump {:.0} Hz (inside max {:.0}, p95 {:.0})",
            l.style,
            l.bars,
            l.wrap_level_db,
            l.inside_level_db_max,
            l.inside_level_db_p95,
            l.wrap_centroid_hz,
            l.inside_centroid_hz_max,
            l.inside_centroid_hz_p95
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
