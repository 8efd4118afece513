//! The band and the idioms of one song: an instrument per stem (a few options per style),
//! the grooves, bass figures, comping rhythms and texture chosen once so the song keeps its
//! identity, and the form plan of which parts play, and how busily, in each section.

use super::bass::BassPlan;
use super::comping::CompPlan;
use super::drums::GroovePlan;
use super::texture::TextureIdiom;
use super::{BarContext, Chart};
use crate::compose::SongRng;
use crate::music::{Instrument, SectionKind, Stem, Style};
use rand::seq::IndexedRandom;

/// How a part plays in a bar: silent, a lighter version, or fully.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Off,
    Light,
    Full,
}

/// Everything decided once per song before a note is written.
#[derive(Clone, Debug)]
pub(crate) struct StylePlan {
    pub style: Style,
    /// Instruments in [`Stem::ALL`] order.
    pub instruments: [Instrument; 5],
    pub grooves: GroovePlan,
    pub bass: BassPlan,
    pub comp: CompPlan,
    pub texture: TextureIdiom,
    /// Where the melody's average pitch should sit (key-relative) for this style's lead.
    pub lead_center: i32,
}

fn pick(options: &[Instrument], avoid: &[Instrument], rng: &mut SongRng) -> Instrument {
    let fresh: Vec<Instrument> = options
        .iter()
        .copied()
        .filter(|i| !avoid.contains(i))
        .collect();
    let pool = if fresh.is_empty() { options } else { &fresh };
    pool.choose(rng).copied().unwrap_or(Instrument::Piano)
}

/// The band of a song in `style`: an instrument per stem in [`Stem::ALL`] order, drawn from
/// the style's options (the lead and texture avoid doubling the chords' instrument).
pub fn choose_band(style: Style, rng: &mut SongRng) -> [Instrument; 5] {
    use Instrument::*;
    let drums = if style == Style::Chiptune {
        ChipNoiseDrums
    } else {
        DrumKit
    };
    let (bass, chords, lead, texture): (
        &[Instrument],
        &[Instrument],
        &[Instrument],
        &[Instrument],
    ) = match style {
        Style::Lofi => (
            &[FingerBass, SubBass],
            &[ElectricPiano, ElectricPiano, Piano],
            &[Vibraphone, Flute, Piano, ElectricPiano],
            &[Bell, Vibraphone, PluckArp],
        ),
        Style::Synthwave => (
            &[AnalogBass, AnalogBass, SubBass],
            &[WarmPad, WarmPad, Strings],
            &[SawLead, SquareLead],
            &[PluckArp, SquareLead],
        ),
        Style::Rock => (
            &[FingerBass],
            &[OverdriveGuitar, OverdriveGuitar, CleanGuitar],
            &[CleanGuitar, SawLead, OverdriveGuitar],
            &[CleanGuitar, Organ, Piano],
        ),
        Style::Ambient => (
            &[SubBass],
            &[WarmPad, Strings, Choir],
            &[Bell, Piano, Flute, Vibraphone],
            &[Bell, Vibraphone, PluckArp],
        ),
        Style::Cinematic => (
            &[Strings, SubBass],
            &[Strings, Strings, Choir],
            &[Horn, Strings, Flute],
            &[Strings, Horn, Choir],
        ),
        Style::Chiptune => (
            &[ChipTriangleBass],
            &[SquareLead, ChipPulseLead],
            &[ChipPulseLead, SquareLead],
            &[ChipPulseLead, SquareLead],
        ),
        Style::Jazz => (
            &[UprightBass],
            &[Piano, Piano, ElectricPiano],
            &[Horn, Vibraphone, Flute, Piano],
            &[Vibraphone, Vibraphone, Piano],
        ),
        Style::Folk => (
            &[UprightBass, UprightBass, FingerBass],
            &[CleanGuitar, CleanGuitar, Piano],
            &[Fiddle, Flute],
            &[Flute, Fiddle, Strings],
        ),
    };
    let bass = pick(bass, &[], rng);
    let chords = pick(chords, &[], rng);
    let lead = pick(lead, &[chords], rng);
    let texture = pick(texture, &[lead, chords], rng);
    [drums, bass, chords, lead, texture]
}

impl StylePlan {
    pub fn choose(chart: &Chart, rng: &mut SongRng) -> StylePlan {
        let style = chart.style;
        let instruments = choose_band(style, rng);
        let lead_center = match style {
            Style::Jazz => 5,
            Style::Lofi | Style::Rock | Style::Cinematic => 7,
            Style::Folk => 9,
            Style::Synthwave | Style::Ambient => 12,
            Style::Chiptune => 14,
        };
        StylePlan {
            style,
            instruments,
            grooves: GroovePlan::choose(style, chart.meter, rng),
            bass: BassPlan::choose(style, chart.meter, rng),
            comp: CompPlan::choose(style, chart.meter, instruments[2], rng),
            texture: TextureIdiom::for_style(style, rng),
            lead_center,
        }
    }

    pub fn instrument(&self, stem: Stem) -> Instrument {
        let index = Stem::ALL.iter().position(|&s| s == stem).unwrap_or(0);
        self.instruments[index]
    }

    /// The form plan: stems enter and leave by section. Intros are chords and texture over
    /// light drums, verses leave room (little texture), choruses have everything, bridges
    /// change feel, outros thin out.
    pub fn level(&self, stem: Stem, ctx: &BarContext) -> Level {
        use Level::*;
        use SectionKind::*;
        let e = ctx.energy;
        let style = self.style;
        match stem {
            Stem::Drums => match ctx.kind {
                _ if style == Style::Ambient && (matches!(ctx.kind, Intro | Outro) || e < 0.3) => {
                    Off
                }
                Intro if e < 0.2 => Off,
                Intro | Outro => Light,
                _ => Full,
            },
            Stem::Bass => match ctx.kind {
                Intro if e < 0.4 && !matches!(style, Style::Ambient | Style::Cinematic) => Off,
                Intro | Outro | Bridge => Light,
                Verse | Chorus => Full,
            },
            Stem::Chords | Stem::Lead => Full,
            Stem::Texture => match ctx.kind {
                Chorus => Full,
                Intro => Light,
                Bridge if style == Style::Ambient => Full,
                Bridge => Light,
                Verse => match style {
                    Style::Rock | Style::Folk | Style::Cinematic => Off,
                    _ => Light,
                },
                // The outro thins: texture leaves for its second half.
                Outro if ctx.bar_in_section * 2 < ctx.section_bars => Light,
                Outro => Off,
            },
        }
    }
}
