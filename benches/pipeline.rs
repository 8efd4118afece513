//! Speed of the generate path on a 3-minute song: composing (plan, lead sheet, arrangement),
//! rendering all stems to a 48 kHz mix, and writing MIDI.
//! Run: `cargo bench -p refrain-benches --bench pipeline`.

// The shipped binary's allocator (cli/src/main.rs), so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use refrain_engine::generate;
use refrain_engine::midi;
use refrain_engine::music::{Song, Style};
use refrain_engine::plan::Request;
use refrain_engine::render::{self, RenderOptions};
use std::hint::black_box;

fn three_minute_request(style: Style) -> Request {
    Request {
        style: Some(style),
        seconds: Some(180.0),
        seed: 3,
        ..Request::default()
    }
}

fn compose(request: &Request) -> Song {
    generate::arrange_request(request)
        .expect("a valid request")
        .1
}

fn pipeline(c: &mut Criterion) {
    let request = three_minute_request(Style::Synthwave);
    c.bench_function("compose 3-minute song", |b| {
        b.iter(|| compose(black_box(&request)))
    });
    let song = compose(&request);
    let options = RenderOptions::default();
    let frames = 180 * u64::from(options.sample_rate);
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    group.bench_function("render 3-minute 5-stem song at 48 kHz", |b| {
        b.iter(|| render::render_song(black_box(&song), frames, &options).expect("renders"))
    });
    // What `refrain generate` and `render` play by default: a lofi song whose lead and chords
    // come from the shipped SoundFont bank, the rest from the built-in synths.
    let lofi = compose(&three_minute_request(Style::Lofi));
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let instruments = render::Instruments {
        bank: Some(render::soundfont::SoundFontBank::shipped(&assets).expect("the shipped bank")),
        all_sampled: false,
    };
    group.bench_function(
        "render 3-minute 5-stem lofi song, default instruments",
        |b| {
            b.iter(|| {
                render::render_song_with(black_box(&lofi), frames, &options, &instruments)
                    .expect("renders")
            })
        },
    );
    group.finish();
    c.bench_function("write MIDI of a 3-minute song", |b| {
        b.iter(|| midi::write_midi(black_box(&song)))
    });
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
