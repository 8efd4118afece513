//! The free-text prompt: "lofi, rainy night, 80 bpm, 90 s" or "低保真 雨夜 80拍 90秒" becomes
//! style, mood, tempo, key, meter and length hints. Words it cannot use are kept, so the plan
//! can say which ones were ignored. Explicit command-line flags override every hint.

use crate::music::{Key, Meter, Mode, Mood, Style, parse_pitch_class};
use serde::{Deserialize, Serialize};

/// What a prompt asked for. Every field is a hint; `None` means the prompt did not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptHints {
    pub style: Option<Style>,
    pub mood: Option<Mood>,
    pub bpm: Option<f64>,
    pub key: Option<Key>,
    pub meter: Option<Meter>,
    pub seconds: Option<f64>,
    pub bars: Option<u32>,
    /// Words (or phrases) that were understood, with what they were taken to mean.
    pub understood: Vec<(String, String)>,
    /// Words that could not be used, in prompt order.
    pub unused: Vec<String>,
}

/// Chinese words and what they mean; matched longest first inside runs of CJK text.
const CHINESE_WORDS: &[(&str, Meaning)] = &[
    ("低保真", Meaning::Style(Style::Lofi)),
    ("洛菲", Meaning::Style(Style::Lofi)),
    ("合成器浪潮", Meaning::Style(Style::Synthwave)),
    ("合成波", Meaning::Style(Style::Synthwave)),
    ("摇滚", Meaning::Style(Style::Rock)),
    ("氛围", Meaning::Style(Style::Ambient)),
    ("环境音乐", Meaning::Style(Style::Ambient)),
    ("管弦", Meaning::Style(Style::Cinematic)),
    ("电影", Meaning::Style(Style::Cinematic)),
    ("史诗", Meaning::Mood(Mood::Epic)),
    ("芯片", Meaning::Style(Style::Chiptune)),
    ("八位", Meaning::Style(Style::Chiptune)),
    ("8位", Meaning::Style(Style::Chiptune)),
    ("爵士", Meaning::Style(Style::Jazz)),
    ("民谣", Meaning::Style(Style::Folk)),
    ("民乐", Meaning::Style(Style::Folk)),
    ("雨夜", Meaning::Mood(Mood::Calm)),
    ("平静", Meaning::Mood(Mood::Calm)),
    ("安静", Meaning::Mood(Mood::Calm)),
    ("放松", Meaning::Mood(Mood::Calm)),
    ("快乐", Meaning::Mood(Mood::Happy)),
    ("欢快", Meaning::Mood(Mood::Happy)),
    ("开心", Meaning::Mood(Mood::Happy)),
    ("悲伤", Meaning::Mood(Mood::Sad)),
    ("伤感", Meaning::Mood(Mood::Sad)),
    ("忧伤", Meaning::Mood(Mood::Sad)),
    ("黑暗", Meaning::Mood(Mood::Dark)),
    ("阴暗", Meaning::Mood(Mood::Dark)),
    ("梦幻", Meaning::Mood(Mood::Dreamy)),
    ("激昂", Meaning::Mood(Mood::Energetic)),
    ("活力", Meaning::Mood(Mood::Energetic)),
    ("紧张", Meaning::Mood(Mood::Tense)),
    ("浪漫", Meaning::Mood(Mood::Romantic)),
    ("怀旧", Meaning::Mood(Mood::Nostalgic)),
    ("华尔兹", Meaning::Meter(Meter::ThreeFour)),
    ("圆舞曲", Meaning::Meter(Meter::ThreeFour)),
];

/// English words (lower case) and what they mean; style names are matched by `Style::parse`.
const ENGLISH_WORDS: &[(&str, Meaning)] = &[
    ("chill", Meaning::Mood(Mood::Calm)),
    ("relaxed", Meaning::Mood(Mood::Calm)),
    ("relaxing", Meaning::Mood(Mood::Calm)),
    ("peaceful", Meaning::Mood(Mood::Calm)),
    ("rainy", Meaning::Mood(Mood::Calm)),
    ("mellow", Meaning::Mood(Mood::Calm)),
    ("joyful", Meaning::Mood(Mood::Happy)),
    ("cheerful", Meaning::Mood(Mood::Happy)),
    ("upbeat", Meaning::Mood(Mood::Happy)),
    ("melancholic", Meaning::Mood(Mood::Sad)),
    ("melancholy", Meaning::Mood(Mood::Sad)),
    ("gloomy", Meaning::Mood(Mood::Dark)),
    ("ominous", Meaning::Mood(Mood::Dark)),
    ("heroic", Meaning::Mood(Mood::Epic)),
    ("dreamlike", Meaning::Mood(Mood::Dreamy)),
    ("ethereal", Meaning::Mood(Mood::Dreamy)),
    ("driving", Meaning::Mood(Mood::Energetic)),
    ("intense", Meaning::Mood(Mood::Tense)),
    ("suspense", Meaning::Mood(Mood::Tense)),
    ("suspenseful", Meaning::Mood(Mood::Tense)),
    ("love", Meaning::Mood(Mood::Romantic)),
    ("retro", Meaning::Mood(Mood::Nostalgic)),
    ("waltz", Meaning::Meter(Meter::ThreeFour)),
    ("jig", Meaning::Meter(Meter::SixEight)),
];

/// Filler words that carry no request and are dropped silently.
const FILLER: &[&str] = &[
    "a", "an", "the", "in", "of", "with", "and", "at", "for", "song", "track", "music", "tune",
    "beat", "一首", "的", "和", "音乐", "歌曲",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Meaning {
    Style(Style),
    Mood(Mood),
    Meter(Meter),
}

/// Parses a prompt. Never fails: anything it does not understand ends up in `unused`.
pub fn parse_prompt(prompt: &str) -> PromptHints {
    let mut hints = PromptHints::default();
    let tokens: Vec<String> = prompt
        .split(|c: char| c.is_whitespace() || ",;，、；。!！?？".contains(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i].as_str();
        let next = tokens.get(i + 1).map(|t| t.to_lowercase());
        let lower = token.to_lowercase();
        // Two-token forms: "80 bpm", "90 s", "2 min", "16 bars", "D minor", "in D minor".
        if let Some(next) = next.as_deref() {
            if let Ok(number) = lower.parse::<f64>()
                && let Some(consumed) = number_with_unit(&mut hints, token, number, next)
            {
                i += consumed;
                continue;
            }
            if lower == "bpm"
                && let Ok(number) = next.parse::<f64>()
            {
                hints.bpm = Some(number);
                hints
                    .understood
                    .push((format!("{token} {next}"), format!("{number} bpm")));
                i += 2;
                continue;
            }
            if let Some(key) = key_from_words(token, next) {
                hints.key = Some(key);
                hints
                    .understood
                    .push((format!("{token} {next}"), format!("key {key}")));
                i += 2;
                continue;
            }
        }
        if !understand_word(&mut hints, token) {
            if token.chars().any(is_cjk) {
                understand_chinese(&mut hints, token);
            } else if !FILLER.contains(&lower.as_str()) {
                hints.unused.push(token.to_string());
            }
        }
        i += 1;
    }
    hints
}

/// "80 bpm", "90 s", "2 min", "16 bars": returns how many tokens were used.
fn number_with_unit(
    hints: &mut PromptHints,
    token: &str,
    number: f64,
    unit: &str,
) -> Option<usize> {
    let phrase = format!("{token} {unit}");
    match unit {
        "bpm" => {
            hints.bpm = Some(number);
            hints.understood.push((phrase, format!("{number} bpm")));
        }
        "s" | "sec" | "secs" | "second" | "seconds" => {
            hints.seconds = Some(number);
            hints.understood.push((phrase, format!("{number} seconds")));
        }
        "min" | "mins" | "minute" | "minutes" => {
            hints.seconds = Some(number * 60.0);
            hints
                .understood
                .push((phrase, format!("{} seconds", number * 60.0)));
        }
        "bar" | "bars" | "measures" => {
            let bars = number as u32;
            if f64::from(bars) != number {
                return None;
            }
            hints.bars = Some(bars);
            hints.understood.push((phrase, format!("{bars} bars")));
        }
        _ => return None,
    }
    Some(2)
}

/// "D minor", "F# major", "A dorian" as two words.
fn key_from_words(tonic: &str, mode: &str) -> Option<Key> {
    if tonic.chars().count() > 3 {
        return None;
    }
    let mode = Mode::parse(mode).filter(|_| !mode.is_empty() && mode.len() > 2)?;
    Some(Key::new(parse_pitch_class(tonic)?, mode))
}

/// One token on its own: a style, a mood, a meter, "80bpm", "90s", "1:30", "Am", "C#m".
fn understand_word(hints: &mut PromptHints, token: &str) -> bool {
    let lower = token.to_lowercase();
    let note = |hints: &mut PromptHints, meaning: String| {
        hints.understood.push((token.to_string(), meaning));
        true
    };
    if let Some(style) = Style::parse(&lower) {
        hints.style.get_or_insert(style);
        return note(hints, format!("style {style}"));
    }
    if let Some(mood) = Mood::parse(&lower) {
        hints.mood.get_or_insert(mood);
        return note(hints, format!("mood {mood}"));
    }
    if let Some((_, meaning)) = ENGLISH_WORDS.iter().find(|(w, _)| *w == lower) {
        return apply_meaning(hints, token, *meaning);
    }
    if let Some(meter) = Meter::parse(&lower).filter(|_| lower.contains('/')) {
        hints.meter = Some(meter);
        return note(hints, format!("meter {meter}"));
    }
    if let Some(bpm) = lower
        .strip_suffix("bpm")
        .and_then(|n| n.parse::<f64>().ok())
    {
        hints.bpm = Some(bpm);
        return note(hints, format!("{bpm} bpm"));
    }
    // "80s" and "90s" read as decades; "45s" or "120s" as seconds.
    if let Some(seconds) = lower.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
        if [60.0, 70.0, 80.0, 90.0].contains(&seconds) {
            return false;
        }
        hints.seconds = Some(seconds);
        return note(hints, format!("{seconds} seconds"));
    }
    if let Some(seconds) = lower
        .strip_suffix("sec")
        .and_then(|n| n.parse::<f64>().ok())
    {
        hints.seconds = Some(seconds);
        return note(hints, format!("{seconds} seconds"));
    }
    if let Some(minutes) = lower
        .strip_suffix("min")
        .and_then(|n| n.parse::<f64>().ok())
    {
        hints.seconds = Some(minutes * 60.0);
        return note(hints, format!("{} seconds", minutes * 60.0));
    }
    if let Some((m, s)) = lower.split_once(':')
        && let (Ok(m), Ok(s)) = (m.parse::<u32>(), s.parse::<u32>())
        && s < 60
    {
        let seconds = f64::from(m * 60 + s);
        hints.seconds = Some(seconds);
        return note(hints, format!("{seconds} seconds"));
    }
    // "Am", "C#m", "Bb" as a key only with a capital letter and a suffix, so "A" stays a word.
    if (2..=4).contains(&token.len())
        && token.starts_with(|c: char| c.is_ascii_uppercase())
        && let Some(key) = Key::parse(token)
    {
        hints.key = Some(key);
        return note(hints, format!("key {key}"));
    }
    false
}

fn apply_meaning(hints: &mut PromptHints, word: &str, meaning: Meaning) -> bool {
    let described = match meaning {
        Meaning::Style(style) => {
            hints.style.get_or_insert(style);
            format!("style {style}")
        }
        Meaning::Mood(mood) => {
            hints.mood.get_or_insert(mood);
            format!("mood {mood}")
        }
        Meaning::Meter(meter) => {
            hints.meter.get_or_insert(meter);
            format!("meter {meter}")
        }
    };
    hints.understood.push((word.to_string(), described));
    true
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// Segments a run of Chinese text greedily against the dictionary and the number forms
/// "80拍", "90秒", "2分钟", "1分30秒", "16小节", and keys "A小调" / "C大调".
fn understand_chinese(hints: &mut PromptHints, token: &str) {
    let chars: Vec<char> = token.chars().collect();
    let mut unknown = String::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        if let Some((word, meaning)) = CHINESE_WORDS
            .iter()
            .filter(|(w, _)| rest.starts_with(w))
            .max_by_key(|(w, _)| w.chars().count())
        {
            flush_unknown(hints, &mut unknown);
            apply_meaning(hints, word, *meaning);
            i += word.chars().count();
            continue;
        }
        if let Some(used) = chinese_number_phrase(hints, &chars[i..]) {
            flush_unknown(hints, &mut unknown);
            i += used;
            continue;
        }
        if let Some(used) = chinese_key(hints, &chars[i..]) {
            flush_unknown(hints, &mut unknown);
            i += used;
            continue;
        }
        unknown.push(chars[i]);
        i += 1;
    }
    flush_unknown(hints, &mut unknown);
}

fn flush_unknown(hints: &mut PromptHints, unknown: &mut String) {
    if !unknown.is_empty() && !FILLER.contains(&unknown.as_str()) {
        hints.unused.push(std::mem::take(unknown));
    }
    unknown.clear();
}

/// Digits followed by a Chinese unit; returns the characters used.
fn chinese_number_phrase(hints: &mut PromptHints, chars: &[char]) -> Option<usize> {
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let number: f64 = chars[..digits].iter().collect::<String>().parse().ok()?;
    let rest: String = chars[digits..].iter().collect();
    let phrase_len = |unit: &str| digits + unit.chars().count();
    let (used, meaning) = if rest.starts_with("拍") {
        hints.bpm = Some(number);
        (phrase_len("拍"), format!("{number} bpm"))
    } else if rest.starts_with("秒") {
        hints.seconds = Some(number);
        (phrase_len("秒"), format!("{number} seconds"))
    } else if let Some(unit) = ["分钟", "分"].into_iter().find(|u| rest.starts_with(u)) {
        let mut seconds = number * 60.0;
        let mut used = phrase_len(unit);
        // "1分30秒"
        let tail = &chars[used..];
        let more = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if more > 0 && tail.get(more) == Some(&'秒') {
            let extra: f64 = tail[..more].iter().collect::<String>().parse().ok()?;
            seconds += extra;
            used += more + 1;
        }
        hints.seconds = Some(seconds);
        (used, format!("{seconds} seconds"))
    } else if rest.starts_with("小节") {
        hints.bars = Some(number as u32);
        (phrase_len("小节"), format!("{number} bars"))
    } else {
        return None;
    };
    let phrase: String = chars[..used].iter().collect();
    hints.understood.push((phrase, meaning));
    Some(used)
}

/// "A小调", "C大调", "F#小调".
fn chinese_key(hints: &mut PromptHints, chars: &[char]) -> Option<usize> {
    let letter = chars.first().filter(|c| c.is_ascii_alphabetic())?;
    let accidental = chars.get(1).filter(|c| matches!(c, '#' | 'b')).copied();
    let mut name = letter.to_string();
    name.extend(accidental);
    let at = name.len();
    let mode_word: String = chars.get(at..at + 2)?.iter().collect();
    let mode = match mode_word.as_str() {
        "大调" => Mode::Major,
        "小调" => Mode::Minor,
        _ => return None,
    };
    let key = Key::new(parse_pitch_class(&name)?, mode);
    hints.key = Some(key);
    let phrase: String = chars[..at + 2].iter().collect();
    hints.understood.push((phrase, format!("key {key}")));
    Some(at + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_prompt_maps_to_hints() {
        let h = parse_prompt("lofi, rainy night, 80 bpm, 90 s");
        assert_eq!(h.style, Some(Style::Lofi));
        assert_eq!(h.mood, Some(Mood::Calm));
        assert_eq!(h.bpm, Some(80.0));
        assert_eq!(h.seconds, Some(90.0));
        assert_eq!(h.unused, vec!["night".to_string()]);
    }

    #[test]
    fn chinese_prompt_maps_to_the_same_hints() {
        let h = parse_prompt("低保真 雨夜 80拍 90秒");
        assert_eq!(h.style, Some(Style::Lofi));
        assert_eq!(h.mood, Some(Mood::Calm));
        assert_eq!(h.bpm, Some(80.0));
        assert_eq!(h.seconds, Some(90.0));
        assert!(h.unused.is_empty(), "{:?}", h.unused);
    }

    #[test]
    fn chinese_without_spaces_is_segmented() {
        let h = parse_prompt("一首悲伤的爵士A小调2分钟华尔兹");
        assert_eq!(h.style, Some(Style::Jazz));
        assert_eq!(h.mood, Some(Mood::Sad));
        assert_eq!(h.key, Some(Key::parse("A minor").unwrap()));
        assert_eq!(h.seconds, Some(120.0));
        assert_eq!(h.meter, Some(Meter::ThreeFour));
        let h = parse_prompt("民谣1分30秒16小节神秘");
        assert_eq!(h.seconds, Some(90.0));
        assert_eq!(h.bars, Some(16));
        assert_eq!(h.unused, vec!["神秘".to_string()]);
    }

    #[test]
    fn keys_meters_and_lengths_in_several_spellings() {
        let h = parse_prompt("dark synthwave in F# minor, 6/8, 120bpm, 2:15");
        assert_eq!(h.style, Some(Style::Synthwave));
        assert_eq!(h.mood, Some(Mood::Dark));
        assert_eq!(h.key, Some(Key::new(6, Mode::Minor)));
        assert_eq!(h.meter, Some(Meter::SixEight));
        assert_eq!(h.bpm, Some(120.0));
        assert_eq!(h.seconds, Some(135.0));
        let h = parse_prompt("epic orchestral Am 32 bars bpm 70");
        assert_eq!(h.style, Some(Style::Cinematic));
        assert_eq!(h.key, Some(Key::new(9, Mode::Minor)));
        assert_eq!(h.bars, Some(32));
        assert_eq!(h.bpm, Some(70.0));
        let h = parse_prompt("happy chiptune 3 min");
        assert_eq!(h.seconds, Some(180.0));
    }

    #[test]
    fn decades_are_not_durations_and_unknown_words_are_kept() {
        let h = parse_prompt("80s retrowave with saxophone");
        assert_eq!(h.style, Some(Style::Synthwave));
        assert_eq!(h.seconds, None);
        assert_eq!(h.unused, vec!["saxophone".to_string()]);
        let h = parse_prompt("90s jazz A sad song");
        assert_eq!(h.seconds, None);
        assert_eq!(h.key, None, "a lone capital A is a word, not a key");
    }

    #[test]
    fn the_first_style_and_mood_win() {
        let h = parse_prompt("jazz rock sad happy");
        assert_eq!(h.style, Some(Style::Jazz));
        assert_eq!(h.mood, Some(Mood::Sad));
    }

    #[test]
    fn empty_and_garbage_prompts_do_not_panic() {
        for p in [
            "", "   ", "，，", "bpm", "90", "1:99", "Z小调", "#", "♯♭", "🎵🎵",
        ] {
            let _ = parse_prompt(p);
        }
    }
}
