//! WAV export: 24-bit (or 16-bit, dithered) PCM with a RIFF INFO chunk (title, software) and,
//! for loops, a `smpl` chunk with the loop points game engines and samplers read.
//!
//! Written here rather than through `hound` because hound writes neither chunk; hound reads
//! the files back in the tests. The whole file is assembled in memory and written at once.

use super::StereoBuffer;
use crate::Error;
use crate::render::dsp::Noise;

/// RIFF INFO fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WavInfo {
    /// INAM: the title.
    pub title: String,
    /// ISFT: the software that made the file.
    pub software: String,
    /// ICMT: a comment (the licence line, say).
    pub comment: String,
}

/// A forward loop over frames `start..=end`, written to the `smpl` chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WavLoop {
    pub start: u32,
    pub end: u32,
}

/// How to write a WAV file.
#[derive(Clone, Debug, PartialEq)]
pub struct WavOptions {
    /// 24 (default) or 16; 16-bit output is TPDF-dithered.
    pub bits: u16,
    pub info: Option<WavInfo>,
    pub looped: Option<WavLoop>,
}

impl Default for WavOptions {
    fn default() -> Self {
        WavOptions {
            bits: 24,
            info: None,
            looped: None,
        }
    }
}

/// Writes a buffer as 24-bit PCM WAV with no extra chunks.
pub fn write_wav(path: &std::path::Path, buffer: &StereoBuffer) -> Result<(), Error> {
    write_wav_with(path, buffer, &WavOptions::default())
}

/// Writes a buffer as stereo PCM WAV: samples clamped to [-1, 1], NaN written as silence, an
/// odd trailing sample (half a frame) left out.
pub fn write_wav_with(
    path: &std::path::Path,
    buffer: &StereoBuffer,
    options: &WavOptions,
) -> Result<(), Error> {
    let bytes = wav_bytes(buffer, options)
        .map_err(|reason| Error::Audio(format!("cannot write {}: {reason}", path.display())))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The bytes of a WAV file, or why it cannot be written.
pub fn wav_bytes(buffer: &StereoBuffer, options: &WavOptions) -> Result<Vec<u8>, String> {
    if buffer.sample_rate == 0 {
        return Err("the buffer has a sample rate of zero".into());
    }
    if options.bits != 16 && options.bits != 24 {
        return Err(format!(
            "{} bits per sample is not supported; use 16 or 24",
            options.bits
        ));
    }
    let samples = &buffer.samples[..buffer.samples.len() & !1];
    let width = usize::from(options.bits / 8);
    let data_len = samples.len() * width;
    if data_len > u32::MAX as usize - 1024 {
        return Err("the audio is too long for one WAV file (4 GB)".into());
    }
    let mut chunks: Vec<u8> = Vec::with_capacity(data_len + 256);
    // fmt: PCM, 2 channels.
    let block_align = 2 * options.bits / 8;
    let mut fmt = Vec::with_capacity(16);
    fmt.extend(1u16.to_le_bytes());
    fmt.extend(2u16.to_le_bytes());
    fmt.extend(buffer.sample_rate.to_le_bytes());
    fmt.extend((buffer.sample_rate * u32::from(block_align)).to_le_bytes());
    fmt.extend(block_align.to_le_bytes());
    fmt.extend(options.bits.to_le_bytes());
    push_chunk(&mut chunks, b"fmt ", &fmt);
    if let Some(info) = &options.info {
        let mut list = b"INFO".to_vec();
        for (id, text) in [
            (b"INAM", &info.title),
            (b"ISFT", &info.software),
            (b"ICMT", &info.comment),
        ] {
            if !text.is_empty() {
                let mut z = text.replace('\0', " ").into_bytes();
                z.push(0);
                push_chunk(&mut list, id, &z);
            }
        }
        push_chunk(&mut chunks, b"LIST", &list);
    }
    if let Some(looped) = options.looped {
        push_chunk(
            &mut chunks,
            b"smpl",
            &smpl_chunk(buffer.sample_rate, looped),
        );
    }
    chunks.extend(b"data");
    chunks.extend((data_len as u32).to_le_bytes());
    match options.bits {
        16 => {
            // TPDF dither: two uniform noises of one LSB each, from a fixed seed so the same
            // audio gives the same file.
            let mut noise = Noise::new(0x5eed_d17e);
            for &s in samples {
                let s = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
                let dither = (noise.sample() + noise.sample()) * 0.5;
                let v = (s * 32_767.0 + dither).round().clamp(-32_768.0, 32_767.0) as i16;
                chunks.extend(v.to_le_bytes());
            }
        }
        _ => {
            for &s in samples {
                let s = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
                let v = (s * 8_388_607.0).round() as i32;
                chunks.extend(&v.to_le_bytes()[..3]);
            }
        }
    }
    if data_len % 2 == 1 {
        chunks.push(0);
    }
    let mut file = Vec::with_capacity(chunks.len() + 12);
    file.extend(b"RIFF");
    file.extend(((chunks.len() + 4) as u32).to_le_bytes());
    file.extend(b"WAVE");
    file.extend(chunks);
    Ok(file)
}

fn push_chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]) {
    out.extend(id);
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// The `smpl` chunk: MIDI unity note 60, no tuning, one forward loop.
fn smpl_chunk(sample_rate: u32, looped: WavLoop) -> Vec<u8> {
    let period_ns = (1_000_000_000u64 / u64::from(sample_rate.max(1))) as u32;
    let words: [u32; 9] = [0, 0, period_ns, 60, 0, 0, 0, 1, 0];
    let mut body: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    // The loop: id, type (0 = forward), start, end (inclusive), fraction, play count (0 = forever).
    for w in [0u32, 0, looped.start, looped.end, 0, 0] {
        body.extend(w.to_le_bytes());
    }
    body
}

/// Reads the loop points back from a WAV file's `smpl` chunk, if it has one.
pub fn read_loop(bytes: &[u8]) -> Option<WavLoop> {
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = bytes.get(at + 8..at + 8 + len)?;
        if id == b"smpl" && len >= 60 {
            let word = |i: usize| u32::from_le_bytes(body[i * 4..i * 4 + 4].try_into().unwrap());
            return Some(WavLoop {
                start: word(11),
                end: word(12),
            });
        }
        at += 8 + len + len % 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> StereoBuffer {
        StereoBuffer {
            sample_rate: 48_000,
            samples: (0..9_600)
                .map(|i| ((i as f32) * 0.01).sin() * 0.5)
                .collect(),
        }
    }

    #[test]
    fn hound_reads_back_24_bit_with_info_and_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let options = WavOptions {
            bits: 24,
            info: Some(WavInfo {
                title: "A title".into(),
                software: "refrain".into(),
                comment: String::new(),
            }),
            looped: Some(WavLoop {
                start: 0,
                end: 4_799,
            }),
        };
        write_wav_with(&path, &buffer(), &options).unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().bits_per_sample, 24);
        assert_eq!(reader.spec().channels, 2);
        let read: Vec<i32> = reader.samples::<i32>().map(|s| s.unwrap()).collect();
        assert_eq!(read.len(), 9_600);
        for (r, s) in read.iter().zip(&buffer().samples) {
            assert_eq!(*r, (s * 8_388_607.0).round() as i32);
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            read_loop(&bytes),
            Some(WavLoop {
                start: 0,
                end: 4_799
            })
        );
        assert!(bytes.windows(7).any(|w| w == b"A title"));
    }

    #[test]
    fn sixteen_bit_is_dithered_within_one_step_and_reproducible() {
        let options = WavOptions {
            bits: 16,
            ..WavOptions::default()
        };
        let a = wav_bytes(&buffer(), &options).unwrap();
        assert_eq!(a, wav_bytes(&buffer(), &options).unwrap());
        let reader = hound::WavReader::new(std::io::Cursor::new(a)).unwrap();
        let read: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
        let mut moved = 0;
        for (r, s) in read.iter().zip(&buffer().samples) {
            let exact = s * 32_767.0;
            assert!((f32::from(*r) - exact).abs() <= 1.5);
            moved += usize::from(f32::from(*r) != exact.round());
        }
        assert!(
            moved > 100,
            "dither should move some samples off plain rounding"
        );
    }

    #[test]
    fn bad_requests_are_refused_in_words() {
        let mut b = buffer();
        let odd = WavOptions {
            bits: 20,
            ..WavOptions::default()
        };
        assert!(wav_bytes(&b, &odd).unwrap_err().contains("16 or 24"));
        b.sample_rate = 0;
        assert!(wav_bytes(&b, &WavOptions::default()).is_err());
    }
}
