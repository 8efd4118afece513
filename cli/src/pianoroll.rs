//! The piano-roll picture of a song for `refrain inspect`: time left to right, one band per
//! stem, notes as rectangles coloured by stem and brightened by velocity, thin bar lines,
//! thick section lines, dotted bounds of accepted segments, and a red tint (with a red mark
//! along the top) over the segments the reasoning loop took back. Draws into an RGB buffer and
//! encodes it as PNG; the picture holds no text.

use refrain_engine::music::{Song, Stem};
use refrain_engine::reasoning::{Decision, TraceEvent};
use std::io;
use std::path::Path;

/// Pixels per grid step (a sixteenth note) while the song fits in [`MAX_WIDTH`].
pub const STEP_PIXELS: f64 = 3.0;
/// Widest picture drawn; longer songs get fewer pixels per step.
pub const MAX_WIDTH: u32 = 4000;
/// Pixels per pitch row (per drum voice on the drum band).
pub const ROW_PIXELS: u32 = 3;
/// Fewest pitch rows a band shows, so a stem that plays few pitches still reads as a band.
pub const MIN_ROWS: u32 = 24;
/// Strip above the bands that holds the red marks of taken-back segments.
pub const TOP_MARGIN: u32 = 8;
/// Dark space between two bands.
const BAND_GAP: u32 = 4;
/// Below this many pixels per bar, bar lines would cover the picture, so none are drawn.
const FEWEST_PIXELS_PER_BAR_LINE: f64 = 4.0;

type Colour = [u8; 3];

const BACKGROUND: Colour = [18, 18, 22];
const BAND_BACKGROUND: Colour = [32, 32, 38];
const BAR_LINE: Colour = [62, 62, 72];
const SECTION_LINE: Colour = [150, 150, 162];
const SEGMENT_BOUND: Colour = [205, 205, 215];
const TAKEN_BACK: Colour = [235, 40, 40];
/// How strongly the red shows through over a taken-back segment's bars.
const TAKEN_BACK_ALPHA: f32 = 0.35;

/// The colour of a stem's notes at full velocity.
pub fn stem_colour(stem: Stem) -> Colour {
    match stem {
        Stem::Drums => [245, 165, 55],
        Stem::Bass => [70, 135, 255],
        Stem::Chords => [85, 205, 125],
        Stem::Lead => [200, 120, 255],
        Stem::Texture => [90, 220, 235],
    }
}

/// A note's colour: its stem's, darker the softer it is played.
pub fn note_colour(stem: Stem, velocity: u8) -> Colour {
    let brightness = 0.35 + 0.65 * f32::from(velocity.min(127)) / 127.0;
    stem_colour(stem).map(|c| (f32::from(c) * brightness).round() as u8)
}

/// What the trace says about the song's bars, as `[start, end)` bar ranges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollMarks {
    /// Bars of segments that had a retract or a backtrack.
    pub taken_back: Vec<[u32; 2]>,
    /// Bars of accepted segments.
    pub accepted: Vec<[u32; 2]>,
}

impl RollMarks {
    pub fn from_trace(events: &[TraceEvent]) -> RollMarks {
        let mut marks = RollMarks::default();
        for event in events {
            let list = match event.decision {
                Decision::Retract | Decision::Backtrack => &mut marks.taken_back,
                Decision::Accept => &mut marks.accepted,
                _ => continue,
            };
            if !list.contains(&event.bars) {
                list.push(event.bars);
            }
        }
        marks
    }
}

/// An RGB picture, rows from the top.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Picture {
    pub fn new(width: u32, height: u32, fill: Colour) -> Picture {
        let pixels = width as usize * height as usize;
        Picture {
            width,
            height,
            rgb: fill.repeat(pixels),
        }
    }

    #[cfg(test)]
    pub fn pixel(&self, x: u32, y: u32) -> Colour {
        let i = self.index(x, y);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * 3
    }

    /// Paints `[x0, x1) x [y0, y1)`, clipped to the picture.
    fn fill(&mut self, (x0, x1): (u32, u32), (y0, y1): (u32, u32), colour: Colour) {
        self.paint((x0, x1), (y0, y1), |_| colour);
    }

    /// Mixes `colour` into `[x0, x1) x [y0, y1)` with weight `alpha`.
    fn blend(&mut self, (x0, x1): (u32, u32), (y0, y1): (u32, u32), colour: Colour, alpha: f32) {
        self.paint((x0, x1), (y0, y1), |old| {
            std::array::from_fn(|c| {
                (f32::from(old[c]) * (1.0 - alpha) + f32::from(colour[c]) * alpha).round() as u8
            })
        });
    }

    fn paint(
        &mut self,
        (x0, x1): (u32, u32),
        (y0, y1): (u32, u32),
        new: impl Fn(Colour) -> Colour,
    ) {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        for y in y0..y1 {
            for x in x0..x1 {
                let i = self.index(x, y);
                let old = [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]];
                self.rgb[i..i + 3].copy_from_slice(&new(old));
            }
        }
    }
}

/// One stem's horizontal band and the pitches it shows, highest at the top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub stem: Stem,
    /// Lowest pitch shown (key-relative; a drum-voice index on the drum band).
    pub lowest: i32,
    pub rows: u32,
    /// First pixel row of the band.
    pub top: u32,
}

impl Band {
    /// Pixel rows `[y0, y1)` of a pitch's row.
    pub fn rows_of(&self, pitch: i32) -> (u32, u32) {
        let from_top = (self.lowest + self.rows as i32 - 1 - pitch).clamp(0, self.rows as i32 - 1);
        let y0 = self.top + from_top as u32 * ROW_PIXELS;
        (y0, y0 + ROW_PIXELS)
    }

    pub fn bottom(&self) -> u32 {
        self.top + self.rows * ROW_PIXELS
    }
}

/// Where everything goes: the time scale and the stems' bands.
#[derive(Clone, Debug, PartialEq)]
pub struct RollLayout {
    pub step_pixels: f64,
    pub steps_per_bar: u32,
    pub bars: u32,
    pub width: u32,
    pub height: u32,
    /// In the order drums, bass, chords, lead, texture; only the song's stems.
    pub bands: Vec<Band>,
}

impl RollLayout {
    pub fn new(song: &Song) -> RollLayout {
        let steps_per_bar = song.meter.steps_per_bar();
        let steps = song.bars.saturating_mul(steps_per_bar);
        let step_pixels = if steps == 0 {
            STEP_PIXELS
        } else {
            STEP_PIXELS.min(f64::from(MAX_WIDTH) / f64::from(steps))
        };
        let mut top = TOP_MARGIN;
        let mut bands = Vec::new();
        for stem in Stem::ALL {
            let Some(track) = song.stem(stem) else {
                continue;
            };
            let (lowest, rows) = pitch_span(track.notes.iter().map(|n| n.pitch), stem);
            let band = Band {
                stem,
                lowest,
                rows,
                top,
            };
            top = band.bottom() + BAND_GAP;
            bands.push(band);
        }
        let mut layout = RollLayout {
            step_pixels,
            steps_per_bar,
            bars: song.bars,
            width: 0,
            height: top,
            bands,
        };
        layout.width = layout.x_of_step(steps).max(1);
        layout
    }

    pub fn x_of_step(&self, step: u32) -> u32 {
        (f64::from(step) * self.step_pixels).round() as u32
    }

    pub fn x_of_bar(&self, bar: u32) -> u32 {
        self.x_of_step(bar.min(self.bars).saturating_mul(self.steps_per_bar))
    }

    #[cfg(test)]
    pub fn band(&self, stem: Stem) -> Option<&Band> {
        self.bands.iter().find(|b| b.stem == stem)
    }
}

/// Lowest pitch and row count of a band showing `pitches`: their range, widened evenly to
/// [`MIN_ROWS`].
fn pitch_span(pitches: impl Iterator<Item = i32>, stem: Stem) -> (i32, u32) {
    let (low, high) = pitches
        .fold(None, |span: Option<(i32, i32)>, p| match span {
            None => Some((p, p)),
            Some((low, high)) => Some((low.min(p), high.max(p))),
        })
        // An empty drum band shows the drum voices from the first; an empty pitched one sits
        // around the tonic.
        .unwrap_or(if stem.is_pitched() {
            (0, 0)
        } else {
            (0, MIN_ROWS as i32 - 1)
        });
    let used = (high - low + 1) as u32;
    if used >= MIN_ROWS {
        return (low, used);
    }
    let spare = (MIN_ROWS - used) as i32;
    // Drum voices count up from the kick at index 0; keep it at the bottom of the band.
    let lowest = if !stem.is_pitched() && high < MIN_ROWS as i32 {
        low.min(0)
    } else {
        low - spare / 2
    };
    (lowest, MIN_ROWS)
}

/// Draws the song (its bars, sections and stems) with the trace's marks.
pub fn draw(song: &Song, marks: &RollMarks) -> Picture {
    let layout = RollLayout::new(song);
    let mut picture = Picture::new(layout.width, layout.height, BACKGROUND);
    for band in &layout.bands {
        picture.fill(
            (0, layout.width),
            (band.top, band.bottom()),
            BAND_BACKGROUND,
        );
    }
    draw_bar_lines(&mut picture, &layout);
    draw_section_lines(&mut picture, &layout, song);
    for &[start, end] in &marks.taken_back {
        let columns = (layout.x_of_bar(start), layout.x_of_bar(end));
        picture.blend(
            columns,
            (TOP_MARGIN, layout.height),
            TAKEN_BACK,
            TAKEN_BACK_ALPHA,
        );
    }
    draw_segment_bounds(&mut picture, &layout, &marks.accepted);
    for band in &layout.bands {
        draw_notes(&mut picture, &layout, song, band);
    }
    for &[start, end] in &marks.taken_back {
        let columns = (layout.x_of_bar(start), layout.x_of_bar(end));
        picture.fill(columns, (1, TOP_MARGIN - 2), TAKEN_BACK);
    }
    picture
}

fn draw_bar_lines(picture: &mut Picture, layout: &RollLayout) {
    let pixels_per_bar = layout.step_pixels * f64::from(layout.steps_per_bar);
    if pixels_per_bar < FEWEST_PIXELS_PER_BAR_LINE {
        return;
    }
    for bar in 1..layout.bars {
        let x = layout.x_of_bar(bar);
        picture.fill((x, x + 1), (TOP_MARGIN, layout.height), BAR_LINE);
    }
}

fn draw_section_lines(picture: &mut Picture, layout: &RollLayout, song: &Song) {
    for section in &song.sections {
        if section.start_bar == 0 || section.start_bar >= layout.bars {
            continue;
        }
        let x = layout.x_of_bar(section.start_bar);
        picture.fill(
            (x.saturating_sub(1), x + 2),
            (TOP_MARGIN, layout.height),
            SECTION_LINE,
        );
    }
}

/// Dotted vertical lines (two pixels on, two off) at both ends of every accepted segment.
fn draw_segment_bounds(picture: &mut Picture, layout: &RollLayout, accepted: &[[u32; 2]]) {
    let mut columns: Vec<u32> = accepted
        .iter()
        .flat_map(|&[start, end]| [start, end])
        .map(|bar| layout.x_of_bar(bar).min(layout.width - 1))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    for x in columns {
        for y in (TOP_MARGIN..layout.height).step_by(4) {
            picture.fill((x, x + 1), (y, y + 2), SEGMENT_BOUND);
        }
    }
}

fn draw_notes(picture: &mut Picture, layout: &RollLayout, song: &Song, band: &Band) {
    let Some(track) = song.stem(band.stem) else {
        return;
    };
    for note in &track.notes {
        let x0 = layout.x_of_step(note.start);
        let mut x1 = layout.x_of_step(note.end()).max(x0 + 1);
        // A one-pixel gap keeps repeated notes apart where there is room for it.
        if x1 - x0 >= 3 {
            x1 -= 1;
        }
        let rows = band.rows_of(note.pitch);
        picture.fill((x0, x1), rows, note_colour(band.stem, note.velocity));
    }
}

/// The picture as an 8-bit RGB PNG.
pub fn encode_png(picture: &Picture) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, picture.width, picture.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&picture.rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// Writes the picture as PNG to `path` through a temporary file beside it, so a reader never
/// sees half a picture.
pub fn write_png(picture: &Picture, path: &Path) -> io::Result<()> {
    let bytes = encode_png(picture).map_err(io::Error::other)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let staging = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&staging, bytes).and_then(|()| std::fs::rename(&staging, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use refrain_engine::music::{
        ChordTrack, Instrument, Key, Meter, Mode, Note, Section, SectionKind, StemTrack, Style,
    };

    fn note(start: u32, duration: u32, pitch: i32, velocity: u8) -> Note {
        Note {
            start,
            duration,
            pitch,
            velocity,
        }
    }

    /// Eight bars of 4/4 (two sections) with a bass and a lead; the lead plays one loud note.
    fn song() -> Song {
        let mut bass = StemTrack::new(Stem::Bass, Instrument::FingerBass);
        bass.notes = (0..8).map(|bar| note(bar * 16, 4, -24, 90)).collect();
        let mut lead = StemTrack::new(Stem::Lead, Instrument::SawLead);
        lead.notes = vec![note(20, 4, 7, 127)];
        let section = |kind, start_bar| Section {
            kind,
            start_bar,
            bars: 4,
            energy: 0.5,
        };
        Song {
            style: Style::Lofi,
            tempo_bpm: 90.0,
            meter: Meter::FourFour,
            key: Key::new(9, Mode::Minor),
            bars: 8,
            sections: vec![
                section(SectionKind::Verse, 0),
                section(SectionKind::Chorus, 4),
            ],
            chords: ChordTrack::default(),
            stems: vec![lead, bass],
        }
    }

    fn middle_of_band(layout: &RollLayout, stem: Stem) -> u32 {
        let band = layout.band(stem).unwrap();
        (band.top + band.bottom()) / 2
    }

    fn is_red_tinted([r, g, b]: Colour) -> bool {
        i32::from(r) > i32::from(g) + 40 && i32::from(r) > i32::from(b) + 40
    }

    #[test]
    fn bands_follow_the_stem_order_and_show_at_least_min_rows() {
        let layout = RollLayout::new(&song());
        let stems: Vec<Stem> = layout.bands.iter().map(|b| b.stem).collect();
        assert_eq!(stems, [Stem::Bass, Stem::Lead]);
        for band in &layout.bands {
            assert_eq!(band.rows, MIN_ROWS);
        }
        assert!(layout.bands[0].bottom() < layout.bands[1].top);
        assert_eq!(layout.width, 8 * 16 * 3);
    }

    #[test]
    fn a_note_fills_its_rows_in_its_stem_band_with_the_stem_colour() {
        let song = song();
        let layout = RollLayout::new(&song);
        let picture = draw(&song, &RollMarks::default());
        let lead = layout.band(Stem::Lead).unwrap();
        let (y0, y1) = lead.rows_of(7);
        assert!(y0 >= lead.top && y1 <= lead.bottom());
        let x = layout.x_of_step(21);
        assert_eq!(picture.pixel(x, y0), stem_colour(Stem::Lead));
        // The same columns hold no lead colour in the bass band, nor one row above the note.
        assert_ne!(
            picture.pixel(x, middle_of_band(&layout, Stem::Bass)),
            stem_colour(Stem::Lead)
        );
        assert_ne!(picture.pixel(x, y0 - 1), stem_colour(Stem::Lead));
    }

    #[test]
    fn softer_notes_are_darker() {
        let loud = note_colour(Stem::Bass, 127);
        let soft = note_colour(Stem::Bass, 20);
        assert_eq!(loud, stem_colour(Stem::Bass));
        assert!(soft.iter().zip(loud).all(|(&s, l)| s < l || l == 0));
    }

    #[test]
    fn taken_back_bars_are_tinted_red_and_marked_at_the_top() {
        let song = song();
        let layout = RollLayout::new(&song);
        let marks = RollMarks {
            taken_back: vec![[2, 4]],
            accepted: vec![[0, 2], [4, 6]],
        };
        let picture = draw(&song, &marks);
        let y = middle_of_band(&layout, Stem::Lead);
        // Inside bar 3, away from its bar line and from the lead's note in bar 1.
        let inside = layout.x_of_bar(3) + 5;
        assert!(is_red_tinted(picture.pixel(inside, y)));
        assert_eq!(picture.pixel(inside, 3), TAKEN_BACK);
        let outside = layout.x_of_bar(6) + 5;
        assert!(!is_red_tinted(picture.pixel(outside, y)));
        assert_eq!(picture.pixel(outside, 3), BACKGROUND);
    }

    #[test]
    fn bars_sections_and_accepted_bounds_draw_lines() {
        let song = song();
        let layout = RollLayout::new(&song);
        let marks = RollMarks {
            taken_back: Vec::new(),
            accepted: vec![[0, 2]],
        };
        let picture = draw(&song, &marks);
        let y = layout.band(Stem::Lead).unwrap().top;
        assert_eq!(picture.pixel(layout.x_of_bar(1), y), BAR_LINE);
        assert_eq!(picture.pixel(layout.x_of_bar(4), y), SECTION_LINE);
        assert_eq!(picture.pixel(layout.x_of_bar(4) + 1, y), SECTION_LINE);
        let bound = layout.x_of_bar(2);
        assert_eq!(picture.pixel(bound, TOP_MARGIN), SEGMENT_BOUND);
        assert_ne!(picture.pixel(bound, TOP_MARGIN + 2), SEGMENT_BOUND);
    }

    #[test]
    fn long_songs_are_scaled_down_to_the_widest_picture() {
        let mut long = song();
        long.bars = 400;
        let layout = RollLayout::new(&long);
        assert_eq!(layout.width, MAX_WIDTH);
        assert!(layout.step_pixels < STEP_PIXELS);
        let picture = draw(&long, &RollMarks::default());
        assert_eq!(picture.rgb.len(), (MAX_WIDTH * layout.height * 3) as usize);
    }

    #[test]
    fn marks_come_from_retracts_backtracks_and_accepts() {
        let event = |segment: usize, bars: [u32; 2], decision| TraceEvent {
            segment,
            section: "verse".into(),
            bars,
            attempt: 0,
            step: None,
            particle: None,
            decision,
            overall: None,
            aspects: Default::default(),
            reason: String::new(),
        };
        let events = [
            event(0, [0, 2], Decision::Accept),
            event(1, [2, 4], Decision::Prune),
            event(1, [2, 4], Decision::Retract),
            event(1, [2, 4], Decision::Retract),
            event(1, [2, 4], Decision::Backtrack),
            event(1, [2, 4], Decision::Accept),
        ];
        let marks = RollMarks::from_trace(&events);
        assert_eq!(marks.taken_back, [[2, 4]]);
        assert_eq!(marks.accepted, [[0, 2], [2, 4]]);
    }

    #[test]
    fn the_png_decodes_to_the_same_pixels() {
        let song = song();
        let picture = draw(&song, &RollMarks::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roll.png");
        write_png(&picture, &path).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!((info.width, info.height), (picture.width, picture.height));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&rgb[..info.buffer_size()], &picture.rgb[..]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the temporary file is gone");
    }
}
