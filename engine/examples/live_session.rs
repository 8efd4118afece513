//! A live session from Rust, the way a game engine (Bevy and the like) would drive it: the
//! `SessionAudio` half goes to the audio callback (here a thread pulling 256-frame buffers at
//! the real-time rate), the `SessionHandle` stays with the game loop, which raises the
//! intensity when a "fight" starts, fires a stinger on the next beat and syncs to the bar.
//!
//!     cargo run --release -p refrain-engine --example live_session
//!
//! It uses the rule-based arranger so it runs without model weights; a game with the weights
//! passes `SessionBuilder::composer` a `DitComposer` (see `refrain play`).

use refrain_engine::music::{Mood, Style};
use refrain_engine::plan::Request;
use refrain_engine::session::{Control, Quantum, SessionBuilder, SessionEvent};
use std::time::{Duration, Instant};

fn main() -> Result<(), refrain_engine::Error> {
    let (mut audio, mut handle) = SessionBuilder::new(Request {
        style: Some(Style::Cinematic),
        mood: Some(Mood::Tense),
        bpm: Some(100.0),
        seed: 42,
        ..Request::default()
    })
    .intensity(0.2)
    .start()?;

    // The audio callback: never allocates, locks or blocks.
    let rate = handle.grid().sample_rate;
    let callback = std::thread::spawn(move || {
        let mut buffer = [0.0f32; 512];
        let period = Duration::from_secs_f64(256.0 / f64::from(rate));
        let start = Instant::now();
        for pull in 0..(12 * rate / 256) {
            if let Some(wait) = (start + period * pull).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            audio.pull(&mut buffer);
        }
    });

    // The game loop.
    let mut fight_started = false;
    let mut last_bar = u64::MAX;
    while !callback.is_finished() {
        let position = handle.position();
        if position.bar != last_bar {
            last_bar = position.bar;
            println!("bar {} (beat {})", position.bar + 1, position.beat + 1);
        }
        if !fight_started && position.frame > u64::from(rate) * 4 {
            fight_started = true;
            let at = handle.set_intensity(1.0, Quantum::Bar)?;
            handle.send(Control::Stinger, Quantum::Beat)?;
            println!("fight! full intensity from frame {at}");
        }
        for event in handle.events() {
            if let SessionEvent::Section {
                kind, start_bar, ..
            } = event
            {
                println!("section: {} from bar {}", kind.name(), start_bar + 1);
            }
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    let _ = callback.join();
    let stats = handle.stats();
    println!(
        "first audio after {:.1} ms, {} underruns, transitions: {:?}",
        stats.first_audio_ms.unwrap_or(f64::NAN),
        stats.underruns,
        stats.transitions
    );
    Ok(())
}
