//! Speed of thinking: a 3-minute song planned, written by the DiT under the reasoning loop
//! with the shipped critic and memorisation guard, and rendered to audio, at each `--think`
//! level, side by side with the plain writer (`--think none`: one candidate, no critic).
//! The bar is `--think balanced` in 5 s or less on these two cores.
//! Run: `cargo bench -p refrain-benches --bench think`.

// The shipped binary's allocator (cli/src/main.rs), so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use refrain_engine::generate;
use refrain_engine::guard::{GUARD_FILE, MelodyIndex};
use refrain_engine::music::Style;
use refrain_engine::plan::Request;
use refrain_engine::reasoning::{Think, Thinking};
use refrain_engine::render::RenderOptions;
use refrain_engine::writer::{self, CpuBackend, Models, WriterSettings};
use refrain_scorer::LearnedCritic;
use std::hint::black_box;

fn think(c: &mut Criterion) {
    let assets = writer::default_assets_dir();
    let device = Default::default();
    let models = Models::<CpuBackend>::load(&assets, &device).expect("the shipped weights");
    let mut critic =
        LearnedCritic::<CpuBackend>::load(&assets, &device).expect("the shipped critic");
    let guard = MelodyIndex::read(&assets.join(GUARD_FILE)).expect("the shipped guard");
    let request = Request {
        style: Some(Style::Lofi),
        bpm: Some(90.0),
        seconds: Some(180.0),
        seed: 3,
        ..Request::default()
    };
    let options = RenderOptions::default();
    let settings = WriterSettings::default();
    let mut group = c.benchmark_group("think");
    group.sample_size(10);
    for level in [Think::None, Think::Fast, Think::Balanced] {
        let mut think = level.settings();
        think.threshold = critic.config.threshold;
        group.bench_function(
            format!(
                "3-minute song, written and rendered, --think {}",
                level.name()
            ),
            |b| {
                b.iter(|| {
                    let mut thinking = Thinking {
                        settings: think.clone(),
                        critic: think.use_critic.then_some(&mut critic as _),
                        guard: Some(&guard),
                    };
                    generate::generate(
                        black_box(&request),
                        &models,
                        &settings,
                        &mut thinking,
                        &options,
                        &refrain_engine::render::Instruments::default(),
                    )
                    .expect("generates")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, think);
criterion_main!(benches);
