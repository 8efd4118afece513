//! Speed of DiT sampling: every stem of a 3-minute song written by the shipped DiT and
//! decoded by the bar autoencoder (no critic, no rendering), at the default sampler settings
//! (8 Euler steps with guidance: 16 model evaluations per segment) and without guidance
//! (8 evaluations), side by side; the real-time factor is 180 s over the median.
//! Run: `cargo bench -p refrain-benches --bench dit`.

use burn::backend::Flex;
use criterion::{Criterion, criterion_group, criterion_main};
use refrain_engine::model::sampler::SamplerSettings;
use refrain_engine::music::Style;
use refrain_engine::plan::{self, Request};
use refrain_engine::writer::{self, Models, NoObserver, WriterSettings};
use std::hint::black_box;

fn dit(c: &mut Criterion) {
    let models = Models::<Flex>::load(&writer::default_assets_dir(), &Default::default())
        .expect("the shipped weights in assets/");
    let request = Request {
        style: Some(Style::Lofi),
        bpm: Some(90.0),
        seconds: Some(180.0),
        seed: 3,
        ..Request::default()
    };
    let mut plan = plan::plan(&request).expect("a valid request");
    let sheet = plan::lead_sheet(&mut plan);
    let mut group = c.benchmark_group("dit");
    group.sample_size(10);
    for (name, guidance) in [("guided", 2.0), ("unguided", 1.0)] {
        let settings = WriterSettings {
            sampler: SamplerSettings {
                guidance,
                ..SamplerSettings::default()
            },
            ..WriterSettings::default()
        };
        group.bench_function(
            format!("sample 3-minute song ({} bars), {name}", plan.bars),
            |b| {
                b.iter(|| {
                    writer::write_song(
                        &models,
                        black_box(&plan),
                        &sheet,
                        &settings,
                        &mut NoObserver,
                    )
                    .expect("writes")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, dit);
criterion_main!(benches);
