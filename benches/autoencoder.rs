//! The bar autoencoder on each CPU backend, side by side: one AdamW training step and one
//! encode + decode of a batch of 128 real stem-bars (refrain's own songs), default config.
//! Run: `cargo bench -p refrain-benches --bench autoencoder`.

// The shipped binary's allocator (cli/src/main.rs), so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use criterion::{Criterion, criterion_group, criterion_main};
use refrain_engine::dataset::own_song_pieces;
use refrain_engine::model::BarAutoencoderConfig;
use refrain_engine::train::data::{StemBar, StemBarOptions, StemBarSet};
use refrain_engine::train::loss::ReconstructionLossConfig;
use refrain_engine::train::{self, AutoencoderTrainingConfig};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 128;

fn stem_bars() -> Vec<StemBar> {
    let pieces = own_song_pieces(1);
    let mut set = StemBarSet::default();
    for piece in &pieces {
        set.add_piece(piece, &StemBarOptions::default())
            .expect("own songs fit the planes");
    }
    let mut bars = set.train;
    bars.extend(set.validation);
    bars.truncate(BATCH);
    assert_eq!(bars.len(), BATCH);
    bars
}

fn bench_backend<B: AutodiffBackend>(c: &mut Criterion, backend: &str, bars: &[StemBar]) {
    let device = B::Device::default();
    let config = AutoencoderTrainingConfig::new(
        BarAutoencoderConfig::new(),
        ReconstructionLossConfig::new(),
    );
    let grid = config.model.grid();
    let refs: Vec<&StemBar> = bars.iter().collect();
    let mut model = Some(config.model.init_seeded::<B>(&device, 0));
    let mut optimizer = train::optimizer::<B>(&config);
    c.bench_function(
        &format!("autoencoder train step, batch {BATCH}/{backend}"),
        |b| {
            b.iter(|| {
                let batch = train::batch_tensors::<B>(grid, &refs, &device);
                let current = model.take().expect("a model between steps");
                let (next, loss) =
                    train::train_step(current, &mut optimizer, &config.loss, batch, 1e-3);
                model = Some(next);
                black_box(loss)
            })
        },
    );
    let inference = model.take().expect("a trained model").valid();
    let inner = burn::tensor::Device::<B::InnerBackend>::default();
    c.bench_function(
        &format!("autoencoder encode+decode, batch {BATCH}/{backend}"),
        |b| {
            b.iter(|| {
                let (planes, _, stems) =
                    train::batch_tensors::<B::InnerBackend>(grid, &refs, &inner);
                let latent = inference.encode(planes, stems.clone());
                black_box(inference.decode_values(latent, stems).into_data())
            })
        },
    );
}

fn autoencoder(c: &mut Criterion) {
    let bars = stem_bars();
    bench_backend::<Autodiff<Flex>>(c, "flex", &bars);
    bench_backend::<Autodiff<NdArray>>(c, "ndarray", &bars);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    targets = autoencoder
}
criterion_main!(benches);
