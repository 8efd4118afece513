//! The planner: turns a request (prompt + flags) into the "chain of musical thought" that
//! everything after it follows: style, mood, tempo, key, meter, a form whose bar count hits
//! the requested duration exactly, chords per beat and an energy curve. Written out as
//! plan.json.

use crate::Error;
use crate::compose::{LeadSheet, SongRng, melody, progression};
use crate::dataset::tonic_chord;
use crate::harmony::{HarmonicRhythm, Labelling, label_chords};
use crate::music::{ChordTrack, Key, Meter, Mode, Mood, Section, SectionKind, Stem, Style};
use crate::prompt::{PromptHints, parse_prompt};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Tempo limits, quarter notes per minute.
pub const MIN_BPM: f64 = 30.0;
pub const MAX_BPM: f64 = 300.0;
/// Longest song refrain writes, seconds: what the renderer holds in memory at once.
pub const MAX_SECONDS: f64 = crate::render::MAX_RENDER_MINUTES as f64 * 60.0;
/// Seconds when neither the prompt nor the flags give a length.
pub const DEFAULT_SECONDS: f64 = 60.0;
/// Ring-out added after the last bar when the length is given in bars (not for loops).
pub const BARS_RING_OUT_SECONDS: f64 = 2.0;
/// Least ring-out kept inside a length given in seconds, so the final chord can resolve
/// instead of being cut (not for loops, and not when the song would lose its only bar).
pub const MIN_RING_OUT_SECONDS: f64 = 1.0;

/// What a user asked for: the prompt and the explicit flags. Explicit flags win over the
/// prompt; anything left open is chosen from the seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub prompt: String,
    pub style: Option<Style>,
    pub mood: Option<Mood>,
    pub bpm: Option<f64>,
    pub key: Option<Key>,
    pub meter: Option<Meter>,
    pub seconds: Option<f64>,
    pub bars: Option<u32>,
    #[serde(default, rename = "loop")]
    pub looped: bool,
    /// Stems to write; `None` means all five.
    pub stems: Option<Vec<Stem>>,
    #[serde(default)]
    pub seed: u64,
}

/// The resolved plan of a song.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub style: Style,
    pub mood: Mood,
    pub tempo_bpm: f64,
    pub meter: Meter,
    pub key: Key,
    /// "D major": the key as a person reads it.
    pub key_name: String,
    pub looped: bool,
    pub stems: Vec<Stem>,
    /// Length of the output, seconds (exact; the audio has round(seconds * rate) frames).
    pub seconds: f64,
    /// Bars of music; `bars * bar_seconds + tail_seconds == seconds`.
    pub bars: u32,
    pub bar_seconds: f64,
    /// Ring-out after the last bar, inside `seconds`.
    pub tail_seconds: f64,
    pub sections: Vec<Section>,
    /// Chord symbols per bar, beats separated by spaces, e.g. "Am7 Am7 D7 D7".
    pub chords_per_bar: Vec<String>,
    /// Energy of each bar, 0..=1.
    pub energy_per_bar: Vec<f32>,
    /// Where each choice came from: "flag", "prompt" or "seed"/"style default".
    pub decided_by: Vec<(String, String)>,
    /// Prompt words that were understood, and what they were taken to mean.
    pub prompt_understood: Vec<(String, String)>,
    /// Prompt words that could not be used.
    pub prompt_unused: Vec<String>,
    pub seed: u64,
}

/// Typical tempo range per style (quarter-note bpm).
pub fn tempo_range(style: Style) -> (f64, f64) {
    match style {
        Style::Lofi => (70.0, 92.0),
        Style::Synthwave => (96.0, 118.0),
        Style::Rock => (108.0, 140.0),
        Style::Ambient => (60.0, 80.0),
        Style::Cinematic => (70.0, 100.0),
        Style::Chiptune => (128.0, 160.0),
        Style::Jazz => (100.0, 150.0),
        Style::Folk => (96.0, 126.0),
    }
}

fn default_meter(style: Style, rng: &mut SongRng) -> Meter {
    let roll: f32 = rng.random();
    match style {
        Style::Folk if roll < 0.3 => Meter::SixEight,
        Style::Folk if roll < 0.5 => Meter::ThreeFour,
        Style::Jazz | Style::Cinematic if roll < 0.15 => Meter::ThreeFour,
        _ => Meter::FourFour,
    }
}

fn default_mood(style: Style, rng: &mut SongRng) -> Mood {
    let choices: &[Mood] = match style {
        Style::Lofi => &[Mood::Calm, Mood::Nostalgic, Mood::Dreamy],
        Style::Synthwave => &[Mood::Nostalgic, Mood::Energetic, Mood::Dark],
        Style::Rock => &[Mood::Energetic, Mood::Happy, Mood::Tense],
        Style::Ambient => &[Mood::Calm, Mood::Dreamy],
        Style::Cinematic => &[Mood::Epic, Mood::Tense, Mood::Sad],
        Style::Chiptune => &[Mood::Happy, Mood::Energetic],
        Style::Jazz => &[Mood::Romantic, Mood::Calm, Mood::Happy],
        Style::Folk => &[Mood::Happy, Mood::Nostalgic, Mood::Calm],
    };
    choices[rng.random_range(0..choices.len())]
}

fn default_mode(style: Style, mood: Mood, rng: &mut SongRng) -> Mode {
    match mood {
        Mood::Sad | Mood::Dark | Mood::Tense | Mood::Epic => Mode::Minor,
        Mood::Happy | Mood::Energetic | Mood::Romantic => Mode::Major,
        Mood::Calm | Mood::Dreamy | Mood::Nostalgic => {
            let roll: f32 = rng.random();
            match style {
                Style::Folk if roll < 0.2 => Mode::Dorian,
                Style::Folk if roll < 0.3 => Mode::Mixolydian,
                Style::Synthwave | Style::Cinematic if roll < 0.7 => Mode::Minor,
                _ if roll < 0.5 => Mode::Minor,
                _ => Mode::Major,
            }
        }
    }
}

/// Picks a value: the flag if given, else the prompt's hint, else the fallback; records which.
fn pick<T>(
    name: &str,
    flag: Option<T>,
    hint: Option<T>,
    fallback: impl FnOnce() -> T,
    decided_by: &mut Vec<(String, String)>,
) -> T {
    let (value, source) = match (flag, hint) {
        (Some(v), _) => (v, "flag"),
        (None, Some(v)) => (v, "prompt"),
        (None, None) => (fallback(), "seed"),
    };
    decided_by.push((name.to_string(), source.to_string()));
    value
}

/// A seeded random source for one purpose of one request, so that adding a draw in one stage
/// does not change what another stage draws.
pub fn stage_rng(seed: u64, stage: &str) -> SongRng {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    for byte in stage.bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    SongRng::seed_from_u64(state)
}

/// Resolves a request into a plan: checks it, fills in what is open, lays out the form.
/// Chords are filled in by [`lead_sheet`]; the plan records them afterwards.
pub fn plan(request: &Request) -> Result<Plan, Error> {
    let hints: PromptHints = parse_prompt(&request.prompt);
    let mut rng = stage_rng(request.seed, "plan");
    let mut decided_by = Vec::new();
    let style = pick(
        "style",
        request.style,
        hints.style,
        || Style::Lofi,
        &mut decided_by,
    );
    let mood = pick(
        "mood",
        request.mood,
        hints.mood,
        || default_mood(style, &mut rng),
        &mut decided_by,
    );
    let tempo_bpm = pick(
        "tempo",
        request.bpm,
        hints.bpm,
        || {
            let (lo, hi) = tempo_range(style);
            f64::from(rng.random_range(lo as u32..=hi as u32))
        },
        &mut decided_by,
    );
    if !(MIN_BPM..=MAX_BPM).contains(&tempo_bpm) || !tempo_bpm.is_finite() {
        return Err(Error::Request(format!(
            "tempo {tempo_bpm} bpm is outside {MIN_BPM}..{MAX_BPM}"
        )));
    }
    let meter = pick(
        "meter",
        request.meter,
        hints.meter,
        || default_meter(style, &mut rng),
        &mut decided_by,
    );
    let key = pick(
        "key",
        request.key,
        hints.key,
        || Key::new(rng.random_range(0..12), default_mode(style, mood, &mut rng)),
        &mut decided_by,
    );
    let stems = request.stems.clone().unwrap_or_else(|| Stem::ALL.to_vec());
    if stems.is_empty() {
        return Err(Error::Request("no stems requested".into()));
    }
    let bar_seconds = meter.bar_seconds(tempo_bpm);

    // Length: explicit flags first (bars or seconds), then the prompt, then the default.
    let (bars, seconds) = match (request.bars, request.seconds, hints.bars, hints.seconds) {
        (Some(bars), _, _, _) | (None, None, Some(bars), None) => {
            decided_by.push((
                "length".into(),
                if request.bars.is_some() {
                    "flag"
                } else {
                    "prompt"
                }
                .into(),
            ));
            let tail = if request.looped {
                0.0
            } else {
                BARS_RING_OUT_SECONDS
            };
            (bars, f64::from(bars) * bar_seconds + tail)
        }
        (None, flag, _, hint) => {
            let source = if flag.is_some() {
                "flag"
            } else if hint.is_some() {
                "prompt"
            } else {
                "default"
            };
            decided_by.push(("length".into(), source.into()));
            let seconds = flag.or(hint).unwrap_or(DEFAULT_SECONDS);
            if !seconds.is_finite() || seconds <= 0.0 {
                return Err(Error::Request(format!(
                    "a song must last more than 0 seconds, not {seconds}"
                )));
            }
            // Whole bars that fit before a short ring-out; the remainder is the ring-out.
            let room = if request.looped || seconds < bar_seconds + MIN_RING_OUT_SECONDS {
                seconds
            } else {
                seconds - MIN_RING_OUT_SECONDS
            };
            let bars = (room / bar_seconds + 1e-9).floor() as u32;
            if request.looped {
                let exact = f64::from(bars) * bar_seconds;
                if (seconds - exact).abs() > 1e-6 {
                    return Err(Error::Request(format!(
                        "a loop must be a whole number of bars: at {tempo_bpm} bpm in {meter} a \
                         bar lasts {bar_seconds:.3} s, so {seconds} s is {:.2} bars; ask for {:.3} \
                         or {:.3} s, or give --bars",
                        seconds / bar_seconds,
                        exact,
                        exact + bar_seconds
                    )));
                }
            }
            (bars, seconds)
        }
    };
    if bars == 0 {
        return Err(Error::Request(format!(
            "{seconds} s is shorter than one bar ({bar_seconds:.3} s at {tempo_bpm} bpm in {meter})"
        )));
    }
    if seconds > MAX_SECONDS {
        return Err(Error::Request(format!(
            "{seconds:.1} s is longer than the {MAX_SECONDS} s refrain writes in one song"
        )));
    }
    let tail_seconds = (seconds - f64::from(bars) * bar_seconds).max(0.0);
    let sections = form(style, mood, bars, request.looped);
    let energy_per_bar = energy_curve(&sections);
    Ok(Plan {
        style,
        mood,
        tempo_bpm,
        meter,
        key,
        key_name: key.to_string(),
        looped: request.looped,
        stems,
        seconds,
        bars,
        bar_seconds,
        tail_seconds,
        sections,
        chords_per_bar: Vec::new(),
        energy_per_bar,
        decided_by,
        prompt_understood: hints.understood,
        prompt_unused: hints.unused,
        seed: request.seed,
    })
}

/// Lays out sections over `bars`: intro, verses and choruses in phrases of four or eight bars,
/// a bridge in longer songs, an outro; loops have neither intro nor outro. The shape of the
/// project's own songs in the corpus; the models write to [`corpus_form`].
pub fn form(style: Style, mood: Mood, bars: u32, looped: bool) -> Vec<Section> {
    let slow_start = matches!(style, Style::Ambient | Style::Cinematic);
    let (intro, outro) = if looped || bars < 8 {
        (0, 0)
    } else if bars < 16 {
        (2, 1)
    } else if bars < 24 {
        (if slow_start { 4 } else { 2 }, 2)
    } else {
        (4, if slow_start { 4 } else { 2 })
    };
    let body = bars - intro - outro;
    let lift = match mood {
        Mood::Energetic | Mood::Epic => 0.1,
        Mood::Calm | Mood::Dreamy | Mood::Sad => -0.1,
        _ => 0.0,
    };
    let mut chorus_count = 0;
    lay_out(intro, body_sections(body, 24), outro, |kind| {
        let energy = match kind {
            SectionKind::Intro => 0.35,
            SectionKind::Outro => 0.3,
            SectionKind::Verse => 0.55,
            SectionKind::Chorus => {
                chorus_count += 1;
                0.75 + 0.07 * chorus_count as f32
            }
            SectionKind::Bridge => 0.5,
        };
        energy + lift
    })
}

/// Lays out sections over `bars` the way the training corpus's pieces are laid out
/// (`dataset::tune_sections`): a one-bar pickup intro, phrases of eight bars (four when the
/// body is shorter than sixteen), a two-bar outro, and the corpus's section energies. The DiT
/// learned intros, outros and phrase ends from that shape; the planner's own [`form`] spends
/// twice the corpus's share of a short song in intro and outro, where the lead rests.
pub fn corpus_form(bars: u32, looped: bool) -> Vec<Section> {
    let intro = u32::from(!looped && bars >= 10);
    let outro = if looped || bars < 8 {
        0
    } else {
        crate::dataset::CORPUS_OUTRO_BARS
    };
    lay_out(
        intro,
        body_sections(bars - intro - outro, 16),
        outro,
        |kind| match kind {
            SectionKind::Intro => 0.35,
            SectionKind::Verse => 0.55,
            SectionKind::Chorus => 0.8,
            SectionKind::Bridge => 0.6,
            SectionKind::Outro => 0.3,
        },
    )
}

/// The body's sections: verses and choruses in phrases of eight bars (four when the body is
/// shorter than `long_body`), a bridge after two choruses, ending on a chorus.
fn body_sections(body: u32, long_body: u32) -> Vec<(SectionKind, u32)> {
    let phrase = if body >= long_body { 8 } else { 4 };
    let mut kinds = Vec::new();
    let mut left = body;
    let mut choruses = 0;
    while left > 0 {
        let index = kinds.len();
        let kind = match index {
            _ if body < phrase * 2 => SectionKind::Verse,
            i if i % 2 == 0
                && i >= 4
                && choruses >= 2
                && !kinds.iter().any(|(k, _)| *k == SectionKind::Bridge) =>
            {
                SectionKind::Bridge
            }
            i if i % 2 == 0 => SectionKind::Verse,
            _ => SectionKind::Chorus,
        };
        if kind == SectionKind::Chorus {
            choruses += 1;
        }
        // A remainder shorter than a phrase joins the last section rather than dangling.
        let length = if left < phrase * 2 && left > phrase {
            left
        } else {
            phrase.min(left)
        };
        kinds.push((kind, length));
        left -= length;
    }
    // End the body on a chorus when there is more than one section: songs land on the hook.
    if kinds.len() > 2
        && let Some(last) = kinds.last_mut()
    {
        last.0 = SectionKind::Chorus;
    }
    kinds
}

/// Sections from an intro, the body and an outro (empty parts left out), each section's
/// energy from `energy` (clamped, two decimals).
fn lay_out(
    intro: u32,
    body: Vec<(SectionKind, u32)>,
    outro: u32,
    mut energy: impl FnMut(SectionKind) -> f32,
) -> Vec<Section> {
    let parts = std::iter::once((SectionKind::Intro, intro))
        .chain(body)
        .chain(std::iter::once((SectionKind::Outro, outro)));
    let mut sections = Vec::new();
    let mut start = 0;
    for (kind, length) in parts {
        if length > 0 {
            sections.push(Section {
                kind,
                start_bar: start,
                bars: length,
                energy: round_energy(energy(kind).clamp(0.1, 1.0)),
            });
            start += length;
        }
    }
    sections
}

/// Energies are read by people in plan.json: two decimals are plenty.
fn round_energy(e: f32) -> f32 {
    (e * 100.0).round() / 100.0
}

/// Energy of each bar: the section's energy, rising over the last bar before a louder section.
pub fn energy_curve(sections: &[Section]) -> Vec<f32> {
    let mut curve = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let next = sections.get(i + 1).map(|s| s.energy);
        for bar in 0..section.bars {
            let mut e = section.energy;
            if bar + 1 == section.bars
                && let Some(next) = next.filter(|&n| n > e)
            {
                e = (e + next) / 2.0;
            }
            curve.push(e);
        }
    }
    curve
}

/// Writes the plan's harmony and melody: the lead sheet the arranger (and later the DiT)
/// follows. Records the chords in the plan for plan.json.
pub fn lead_sheet(plan: &mut Plan) -> LeadSheet {
    let mut harmony_rng = stage_rng(plan.seed, "progression");
    let chords = progression::write_progression(
        plan.style,
        plan.mood,
        plan.key,
        plan.meter,
        &plan.sections,
        &mut harmony_rng,
    );
    let mut melody_rng = stage_rng(plan.seed, "melody");
    let melody = melody::write_melody(
        plan.style,
        plan.mood,
        plan.key,
        plan.meter,
        &plan.sections,
        &chords,
        &mut melody_rng,
    );
    plan.chords_per_bar = chord_symbols(plan, &chords);
    LeadSheet {
        style: plan.style,
        mood: plan.mood,
        tempo_bpm: plan.tempo_bpm,
        meter: plan.meter,
        key: plan.key,
        bars: plan.bars,
        sections: plan.sections.clone(),
        chords,
        melody,
        looped: plan.looped,
    }
}

/// The chords of every bar as a person reads them ("Am7 Am7 D7 D7"), for plan.json.
fn chord_symbols(plan: &Plan, chords: &ChordTrack) -> Vec<String> {
    (0..plan.bars)
        .map(|bar| {
            chords
                .bar(plan.meter, bar)
                .iter()
                .map(|c| c.symbol(plan.key))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Plans a request for the models to write: [`plan`] laid out in the corpus's form
/// ([`corpus_form`]), its lead sheet written, and the sheet's chords labelled again from its
/// melody by the corpus's labeller ([`corpus_harmony`]), weighted as `labelling_by_style`
/// says for the plan's style (the DiT file's fitted labelling; empty: as the corpus was).
/// The DiT and the critic are then told conditions like those they were trained on; the
/// arranger (and the project's own songs in the corpus) keep the planner's form and harmony.
pub fn plan_for_models(
    request: &Request,
    labelling_by_style: &[Labelling],
) -> Result<(Plan, LeadSheet), Error> {
    let (mut plan, mut sheet) = unlabelled_plan_for_models(request)?;
    let labelling = plan_labelling(labelling_by_style, plan.style);
    corpus_harmony(&mut plan, &mut sheet, labelling);
    Ok((plan, sheet))
}

/// [`plan_for_models`] before its chords are labelled: the planner's lead sheet in the
/// corpus's form, still carrying the planner's own progression.
pub fn unlabelled_plan_for_models(request: &Request) -> Result<(Plan, LeadSheet), Error> {
    let mut plan = plan(request)?;
    plan.sections = corpus_form(plan.bars, plan.looped);
    plan.energy_per_bar = energy_curve(&plan.sections);
    let sheet = lead_sheet(&mut plan);
    Ok((plan, sheet))
}

/// How the models' plans of `style` are labelled: the style's entry of `by_style` (one per
/// style in `Style::ALL` order, fitted by `refrain train calibrate` and stored in the DiT's
/// file), or as the corpus's pieces were when it is empty.
pub fn plan_labelling(by_style: &[Labelling], style: Style) -> Labelling {
    by_style
        .get(style.number())
        .copied()
        .unwrap_or(Labelling::CORPUS)
}

/// Labels the sheet's chords from its melody with the corpus's labeller and harmonic rhythm
/// (`harmony::label_chords`), outro on the tonic, and records them in the plan. Seven in
/// eight of the corpus's pieces carry chords labelled that way (mostly triads, two a bar in
/// 4/4); the planner's style progressions (all sevenths and ninths in lofi, say) appear only
/// in the project's own songs, whose sparser leads the DiT reproduces when told such chords.
///
/// `labelling` is the corpus's ([`Labelling::CORPUS`]) or a style's fitted one: the
/// planner's melodies wander more than the corpus's tunes, so labelled as the corpus was
/// their chords change more often and over more roots than the pieces' do.
pub fn corpus_harmony(plan: &mut Plan, sheet: &mut LeadSheet, labelling: Labelling) {
    let chords = corpus_chords(sheet, labelling);
    plan.chords_per_bar = chord_symbols(plan, &chords);
    sheet.chords = chords;
}

/// The chords [`corpus_harmony`] gives the sheet, without recording them.
pub fn corpus_chords(sheet: &LeadSheet, labelling: Labelling) -> ChordTrack {
    let rhythm = HarmonicRhythm::corpus(sheet.meter);
    let mut chords = label_chords(
        sheet.key,
        sheet.meter,
        sheet.bars,
        &sheet.melody,
        rhythm,
        labelling,
    );
    let beats = sheet.meter.beats_per_bar() as usize;
    chords
        .per_beat
        .resize(sheet.bars as usize * beats, tonic_chord(sheet.key));
    for outro in sheet
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Outro)
    {
        let range = outro.start_bar as usize * beats..outro.end_bar() as usize * beats;
        for chord in &mut chords.per_beat[range] {
            *chord = tonic_chord(sheet.key);
        }
    }
    chords
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmony::root_entropy;

    fn request(prompt: &str) -> Request {
        Request {
            prompt: prompt.into(),
            seed: 7,
            ..Request::default()
        }
    }

    #[test]
    fn flags_win_over_the_prompt() {
        let mut r = request("jazz 90 bpm 3/4 in D minor 45 s");
        r.style = Some(Style::Rock);
        r.bpm = Some(120.0);
        let p = plan(&r).unwrap();
        assert_eq!(p.style, Style::Rock);
        assert_eq!(p.tempo_bpm, 120.0);
        assert_eq!(p.meter, Meter::ThreeFour);
        assert_eq!(p.key, Key::parse("D minor").unwrap());
        assert_eq!(p.seconds, 45.0);
    }

    #[test]
    fn bars_and_tail_hit_the_requested_duration_exactly() {
        for (bpm, meter, seconds) in [
            (100.0, Meter::FourFour, 30.0),
            (87.0, Meter::ThreeFour, 90.0),
            (133.0, Meter::SixEight, 61.5),
            (60.0, Meter::FourFour, 4.0),
            (80.0, Meter::FourFour, 90.0),
        ] {
            let r = Request {
                bpm: Some(bpm),
                meter: Some(meter),
                seconds: Some(seconds),
                ..request("")
            };
            let p = plan(&r).unwrap();
            let total = f64::from(p.bars) * p.bar_seconds + p.tail_seconds;
            assert!((total - seconds).abs() < 1e-9);
            assert!(p.tail_seconds < p.bar_seconds + MIN_RING_OUT_SECONDS + 1e-9);
            if seconds >= p.bar_seconds + MIN_RING_OUT_SECONDS {
                assert!(p.tail_seconds >= MIN_RING_OUT_SECONDS - 1e-9, "{seconds} s");
            }
            let covered: u32 = p.sections.iter().map(|s| s.bars).sum();
            assert_eq!(covered, p.bars);
            assert_eq!(p.energy_per_bar.len(), p.bars as usize);
        }
    }

    #[test]
    fn sections_tile_the_song_in_order_for_every_length() {
        for style in Style::ALL {
            for bars in 1..120 {
                for looped in [false, true] {
                    let planned = form(style, Mood::Calm, bars, looped);
                    let corpus = corpus_form(bars, looped);
                    for sections in [planned, corpus] {
                        let mut next = 0;
                        for s in &sections {
                            assert_eq!(s.start_bar, next);
                            assert!(s.bars > 0);
                            assert!((0.0..=1.0).contains(&s.energy));
                            next = s.end_bar();
                        }
                        assert_eq!(next, bars);
                        if looped {
                            assert!(
                                sections.iter().all(|s| s.kind != SectionKind::Intro
                                    && s.kind != SectionKind::Outro)
                            );
                        }
                    }
                }
            }
        }
    }

    /// The project's own songs in the corpus are laid out by `form`: the corpus (and its
    /// manifest hash) stays reproducible only while `form` does.
    #[test]
    fn the_planners_form_is_the_one_the_corpus_was_built_with() {
        let shape = |sections: Vec<Section>| -> Vec<(SectionKind, u32, u32, f32)> {
            sections
                .iter()
                .map(|s| (s.kind, s.start_bar, s.bars, s.energy))
                .collect()
        };
        use SectionKind::*;
        assert_eq!(
            shape(form(Style::Lofi, Mood::Happy, 40, false)),
            vec![
                (Intro, 0, 4, 0.35),
                (Verse, 4, 8, 0.55),
                (Chorus, 12, 8, 0.82),
                (Verse, 20, 8, 0.55),
                (Chorus, 28, 10, 0.89),
                (Outro, 38, 2, 0.3),
            ]
        );
        assert_eq!(
            shape(form(Style::Ambient, Mood::Calm, 30, false)),
            vec![
                (Intro, 0, 4, 0.25),
                (Verse, 4, 4, 0.45),
                (Chorus, 8, 4, 0.72),
                (Verse, 12, 4, 0.45),
                (Chorus, 16, 4, 0.79),
                (Chorus, 20, 6, 0.86),
                (Outro, 26, 4, 0.2),
            ]
        );
    }

    #[test]
    fn the_models_form_has_the_corpus_pickup_intro_phrases_and_outro() {
        use SectionKind::*;
        let shape = |bars: u32| -> Vec<(SectionKind, u32)> {
            corpus_form(bars, false)
                .iter()
                .map(|s| (s.kind, s.bars))
                .collect()
        };
        // A 30-second song at 84 bpm: one bar of pickup, two four-bar phrases and the
        // corpus's two bars of tonic.
        assert_eq!(
            shape(11),
            vec![(Intro, 1), (Verse, 4), (Chorus, 4), (Outro, 2)]
        );
        assert_eq!(
            shape(21),
            vec![(Intro, 1), (Verse, 8), (Chorus, 10), (Outro, 2)]
        );
        assert_eq!(shape(7), vec![(Verse, 7)]);
        for section in corpus_form(64, false) {
            let expected = match section.kind {
                Intro => 0.35,
                Verse => 0.55,
                Chorus => 0.8,
                Bridge => 0.6,
                Outro => 0.3,
            };
            assert_eq!(section.energy, expected);
        }
    }

    #[test]
    fn the_models_harmony_is_labelled_from_the_melody_like_the_corpus() {
        for (style, meter) in [
            (Style::Lofi, Meter::FourFour),
            (Style::Jazz, Meter::ThreeFour),
            (Style::Folk, Meter::SixEight),
        ] {
            let request = Request {
                style: Some(style),
                meter: Some(meter),
                seconds: Some(45.0),
                seed: 11,
                ..Request::default()
            };
            let (plan, sheet) = plan_for_models(&request, &[]).unwrap();
            assert_eq!(plan.sections, corpus_form(plan.bars, false));
            assert_eq!(sheet.sections, plan.sections);
            let beats = meter.beats_per_bar() as usize;
            assert_eq!(sheet.chords.per_beat.len(), plan.bars as usize * beats);
            let labelled = label_chords(
                sheet.key,
                meter,
                sheet.bars,
                &sheet.melody,
                HarmonicRhythm::corpus(meter),
                Labelling::CORPUS,
            );
            let outro = plan.sections.last().unwrap();
            assert_eq!(outro.kind, SectionKind::Outro);
            let outro_from = outro.start_bar as usize * beats;
            assert_eq!(
                sheet.chords.per_beat[..outro_from],
                labelled.per_beat[..outro_from]
            );
            assert!(
                sheet.chords.per_beat[outro_from..]
                    .iter()
                    .all(|&c| c == tonic_chord(sheet.key))
            );
            // plan.json tells the chords the models were given.
            assert_eq!(plan.chords_per_bar, chord_symbols(&plan, &sheet.chords));
            // The planner's own progression (the arranger's) is a different one.
            let mut arranged = super::plan(&request).unwrap();
            let own = lead_sheet(&mut arranged);
            assert_ne!(own.chords, sheet.chords);
        }
    }

    #[test]
    fn the_models_plans_take_their_styles_labelling() {
        let request = Request {
            style: Some(Style::Chiptune),
            seconds: Some(40.0),
            seed: 3,
            ..Request::default()
        };
        let chords = |by_style: &[Labelling]| plan_for_models(&request, by_style).unwrap().1.chords;
        let corpus = chords(&[]);
        let mut by_style = vec![Labelling::CORPUS; Style::ALL.len()];
        assert_eq!(chords(&by_style), corpus);
        let held = Labelling {
            change_penalty: 100.0,
            ..Labelling::CORPUS
        };
        by_style[Style::Lofi.number()] = held;
        assert_eq!(chords(&by_style), corpus, "another style's labelling");
        by_style[Style::Chiptune.number()] = held;
        let held = chords(&by_style);
        assert!(corpus.changes() > 2, "{}", corpus.changes());
        // One chord until the outro's tonic.
        assert!(held.changes() <= 1, "{}", held.changes());
        assert!(root_entropy(&held.per_beat) < root_entropy(&corpus.per_beat));
    }

    #[test]
    fn long_songs_have_the_usual_form() {
        let sections = form(Style::Rock, Mood::Happy, 72, false);
        let kinds: Vec<_> = sections.iter().map(|s| s.kind).collect();
        assert_eq!(kinds.first(), Some(&SectionKind::Intro));
        assert_eq!(kinds.last(), Some(&SectionKind::Outro));
        assert!(kinds.contains(&SectionKind::Chorus));
        assert!(kinds.contains(&SectionKind::Bridge));
        let verse = sections
            .iter()
            .find(|s| s.kind == SectionKind::Verse)
            .unwrap();
        let chorus = sections
            .iter()
            .find(|s| s.kind == SectionKind::Chorus)
            .unwrap();
        assert!(chorus.energy > verse.energy);
    }

    #[test]
    fn bad_requests_are_refused_in_words() {
        let too_fast = Request {
            bpm: Some(1000.0),
            ..request("")
        };
        assert!(plan(&too_fast).unwrap_err().to_string().contains("tempo"));
        let too_long = Request {
            seconds: Some(MAX_SECONDS + 1.0),
            ..request("")
        };
        assert!(
            plan(&too_long)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
        let too_short = Request {
            seconds: Some(0.5),
            bpm: Some(60.0),
            ..request("")
        };
        assert!(
            plan(&too_short)
                .unwrap_err()
                .to_string()
                .contains("shorter than one bar")
        );
        let bad_loop = Request {
            seconds: Some(30.0),
            bpm: Some(100.0),
            looped: true,
            ..request("")
        };
        assert!(
            plan(&bad_loop)
                .unwrap_err()
                .to_string()
                .contains("whole number of bars")
        );
        let no_stems = Request {
            stems: Some(vec![]),
            ..request("")
        };
        assert!(plan(&no_stems).is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_others_differ() {
        let a = plan(&request("")).unwrap();
        assert_eq!(a, plan(&request("")).unwrap());
        let differ = (0..20u64).any(|seed| {
            let other = plan(&Request {
                seed,
                ..request("")
            })
            .unwrap();
            other.key != a.key || other.tempo_bpm != a.tempo_bpm
        });
        assert!(differ);
    }
}
