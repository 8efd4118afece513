//! Speed of DiT sampling: every stem of a 3-minute song written by the shipped DiT and
//! decoded by the bar autoencoder (no critic, no rendering): 8 Euler steps unguided (the
//! default) on flex (what generation uses) and on ndarray, and with guidance 2 (16 model
//! evaluations per segment) on flex, side by side; the real-time factor is 180 s over the
//! median. Also one training step at the shipped size on flex and on ndarray, side by side,
//! on the flow loss alone and with the decoded terms.
//! Run: `cargo bench -p refrain-benches --bench dit`.

// The shipped binary's allocator (cli/src/main.rs), so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use refrain_engine::compose::LeadSheet;
use refrain_engine::model::sampler::SamplerSettings;
use refrain_engine::music::Style;
use refrain_engine::plan::{self, Plan, Request};
use refrain_engine::reasoning::Thinking;
use refrain_engine::writer::{self, Models, WriterSettings};
use std::hint::black_box;

fn bench_song<B: Backend>(
    group: &mut BenchmarkGroup<WallTime>,
    name: &str,
    plan: &Plan,
    sheet: &LeadSheet,
    guidance: f32,
    decoding_rules: bool,
) {
    let mut models = Models::<B>::load(&writer::default_assets_dir(), &Default::default())
        .expect("the shipped weights in assets/");
    if !decoding_rules {
        // Decoded as before the playing rules and the rhythm lift: bass and lead single
        // lines only, each bar on its own.
        models.dit_config.set_playing(&[]);
        models.dit_config.rhythm_lift_by_style.clear();
    }
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
                    black_box(plan),
                    sheet,
                    &settings,
                    &mut Thinking::none(),
                )
                .expect("writes")
            })
        },
    );
}

fn dit(c: &mut Criterion) {
    let request = Request {
        style: Some(Style::Lofi),
        bpm: Some(90.0),
        seconds: Some(180.0),
        seed: 3,
        ..Request::default()
    };
    // Planned as `generate` plans for the shipped DiT: its chords labelled as the file says.
    let shipped = Models::<Flex>::load(&writer::default_assets_dir(), &Default::default())
        .expect("the shipped weights in assets/");
    let labelling = &shipped.dit_config.plan_labelling_by_style;
    let (plan, sheet) = plan::plan_for_models(&request, labelling).expect("a valid request");
    let mut group = c.benchmark_group("dit");
    group.sample_size(10);
    bench_song::<Flex>(&mut group, "unguided, flex", &plan, &sheet, 1.0, true);
    bench_song::<Flex>(
        &mut group,
        "unguided, flex, no playing rules or rhythm lift",
        &plan,
        &sheet,
        1.0,
        false,
    );
    bench_song::<NdArray>(&mut group, "unguided, ndarray", &plan, &sheet, 1.0, true);
    bench_song::<Flex>(&mut group, "guidance 2, flex", &plan, &sheet, 2.0, true);
    group.finish();
}

/// One DiT training step (forward, backward, AdamW) at the shipped size on a batch of 32
/// eight-bar windows, flex against ndarray.
fn dit_training_step(c: &mut Criterion) {
    use burn::backend::Autodiff;
    use refrain_engine::dataset::{Split, own_song_pieces};
    use refrain_engine::model::{BarAutoencoder, DitConfig};
    use refrain_engine::train::decoded_terms::{DecodedTerms, DecodedWeights};
    use refrain_engine::train::dit::{DitTrainingConfig, optimizer, train_step};
    use refrain_engine::train::latents::{LatentSet, cumulative_windows, training_batch};

    let ae_path = writer::default_assets_dir().join(writer::AUTOENCODER_FILE);
    let (ae_config, autoencoder) =
        BarAutoencoder::<Flex>::load_file(&ae_path, &Default::default()).expect("weights");
    let mut pieces = own_song_pieces(2);
    for piece in &mut pieces {
        piece.split = Split::Train;
    }
    let set = LatentSet::encode(
        &pieces,
        &autoencoder,
        &ae_config,
        &Default::default(),
        &mut |_| {},
    )
    .expect("encodes");
    let (mean, std) = set.statistics();
    let config =
        DitTrainingConfig::new(DitConfig::new().with_latent_mean(mean).with_latent_std(std));
    let candidates = set.windows_of(Split::Train, config.window_bars);
    let cumulative = cumulative_windows(&set, &candidates, config.window_bars);
    let batch = training_batch(
        &set,
        &config.model,
        &config.masking,
        &candidates,
        &cumulative,
        0,
        0,
        config.batch,
        config.window_bars,
    );
    let mut group = c.benchmark_group("dit training step");
    group.sample_size(10);
    fn bench_backend<B: burn::tensor::backend::AutodiffBackend>(
        group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
        name: &str,
        config: &DitTrainingConfig,
        batch: &refrain_engine::train::latents::WindowBatch,
        ae_path: &std::path::Path,
    ) {
        let device = B::Device::default();
        let (ae_config, autoencoder) =
            BarAutoencoder::<B>::load_file(ae_path, &device).expect("weights");
        let terms = DecodedTerms::new(autoencoder, &ae_config);
        let onset = DecodedWeights {
            onset: 1.0,
            groove: 0.0,
        };
        let both = DecodedWeights {
            onset: 1.0,
            groove: 1.0,
        };
        for (label, decoded) in [
            (name.to_string(), None),
            (format!("{name} + decoded onsets"), Some((&terms, onset))),
            (
                format!("{name} + decoded onsets and groove"),
                Some((&terms, both)),
            ),
        ] {
            let mut model = config.model.init_seeded::<B>(&device, 0);
            let mut optimizer = optimizer::<B>(config);
            group.bench_function(label, |b| {
                b.iter(|| {
                    let (next, loss) = train_step(
                        model.clone(),
                        &mut optimizer,
                        &config.model,
                        batch,
                        decoded,
                        1e-4,
                        &device,
                    );
                    model = next;
                    loss
                })
            });
        }
    }
    bench_backend::<Autodiff<Flex>>(&mut group, "flex", &config, &batch, &ae_path);
    bench_backend::<Autodiff<NdArray>>(&mut group, "ndarray", &config, &batch, &ae_path);
    group.finish();
}

criterion_group!(benches, dit, dit_training_step);
criterion_main!(benches);
