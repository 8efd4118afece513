//! Batching DiT evaluations across songs written at the same time. Each worker thread runs
//! its own sampler and reasoning loop; when one needs the model it hands its windows to a
//! shared [`DitBatcher`] and waits. Once every registered worker is waiting (or a short linger
//! has passed), one of them runs a single forward pass over all the waiting windows that share
//! a shape, and every caller takes its own rows back. On a GPU that turns many small passes
//! into one large one; on the CPU a window's values do not depend on the batch it rides in
//! (see the sampler's tests), so songs stay byte-identical whether batched or not.

use super::dit::{Dit, DitInput};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Something that evaluates the DiT's velocity for a batch of windows.
pub trait Denoiser<B: Backend>: Sync {
    fn denoise(&self, input: DitInput<B>) -> Tensor<B, 3>;
}

impl<B: Backend> Denoiser<B> for Dit<B> {
    fn denoise(&self, input: DitInput<B>) -> Tensor<B, 3> {
        self.forward(input)
    }
}

impl<B: Backend, D: Denoiser<B> + ?Sized> Denoiser<B> for Box<D> {
    fn denoise(&self, input: DitInput<B>) -> Tensor<B, 3> {
        (**self).denoise(input)
    }
}

/// Windows of one caller waiting for a pass.
struct Waiting<B: Backend> {
    ticket: u64,
    input: DitInput<B>,
    since: Instant,
}

struct State<B: Backend> {
    workers: usize,
    waiting: Vec<Waiting<B>>,
    done: BTreeMap<u64, Tensor<B, 3>>,
    next_ticket: u64,
    passes: u64,
    windows: u64,
}

/// A DiT shared by worker threads whose evaluations it batches; see the module documentation.
pub struct DitBatcher<B: Backend> {
    model: Box<dyn Denoiser<B> + Send>,
    state: Mutex<State<B>>,
    changed: Condvar,
    linger: Duration,
    max_windows: usize,
}

/// A worker's registration: while it lives, passes wait for this worker too (up to the
/// linger). Dropping it lets the others go on without it.
pub struct Worker<'a, B: Backend> {
    batcher: &'a DitBatcher<B>,
}

impl<B: Backend> Drop for Worker<'_, B> {
    fn drop(&mut self) {
        let mut state = self.batcher.lock();
        state.workers = state.workers.saturating_sub(1);
        drop(state);
        self.batcher.changed.notify_all();
    }
}

/// Passes run and windows evaluated so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchCounts {
    pub passes: u64,
    pub windows: u64,
}

impl<B: Backend> DitBatcher<B> {
    /// `linger`: how long a caller waits for workers that are busy elsewhere (rendering, the
    /// critic) before a pass goes without them; `max_windows`: the largest pass. `model` is
    /// the DiT itself, or an [`super::offload::OffloadedDit`] that runs it on a GPU.
    pub fn new(
        model: impl Denoiser<B> + Send + 'static,
        linger: Duration,
        max_windows: usize,
    ) -> Self {
        DitBatcher {
            model: Box::new(model),
            state: Mutex::new(State {
                workers: 0,
                waiting: Vec::new(),
                done: BTreeMap::new(),
                next_ticket: 0,
                passes: 0,
                windows: 0,
            }),
            changed: Condvar::new(),
            linger,
            max_windows: max_windows.max(1),
        }
    }

    /// Registers the calling worker (see [`Worker`]).
    pub fn worker(&self) -> Worker<'_, B> {
        self.lock().workers += 1;
        Worker { batcher: self }
    }

    pub fn counts(&self) -> BatchCounts {
        let state = self.lock();
        BatchCounts {
            passes: state.passes,
            windows: state.windows,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A worker that panicked mid-pass leaves nothing half-updated that matters here.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The waiting callers to evaluate in one pass: the oldest caller's shape, oldest first,
    /// up to `max_windows` windows (always at least the oldest caller).
    fn take_pass(&self, state: &mut State<B>) -> Vec<Waiting<B>> {
        let Some(first) = state.waiting.iter().min_by_key(|w| w.ticket) else {
            return Vec::new();
        };
        let shape = first.input.tokens.dims()[1..].to_vec();
        let mut chosen = Vec::new();
        let mut windows = 0;
        let mut rest = Vec::new();
        let mut waiting = std::mem::take(&mut state.waiting);
        waiting.sort_by_key(|w| w.ticket);
        for w in waiting {
            let [count, tokens, latent] = w.input.tokens.dims();
            let fits = [tokens, latent] == shape[..] && windows + count <= self.max_windows;
            if chosen.is_empty() || fits {
                windows += count;
                chosen.push(w);
            } else {
                rest.push(w);
            }
        }
        state.waiting = rest;
        chosen
    }
}

impl<B: Backend> Denoiser<B> for DitBatcher<B> {
    fn denoise(&self, input: DitInput<B>) -> Tensor<B, 3> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push(Waiting {
            ticket,
            input,
            since: Instant::now(),
        });
        self.changed.notify_all();
        loop {
            if let Some(out) = state.done.remove(&ticket) {
                return out;
            }
            let oldest = state.waiting.iter().map(|w| w.since).min();
            let everyone_waits = state.waiting.len() >= state.workers;
            let lingered = oldest.is_some_and(|t| t.elapsed() >= self.linger);
            if oldest.is_some() && (everyone_waits || lingered) {
                let pass = self.take_pass(&mut state);
                state.passes += 1;
                state.windows += pass
                    .iter()
                    .map(|w| w.input.tokens.dims()[0] as u64)
                    .sum::<u64>();
                drop(state);
                let outputs = self.run_pass(&pass);
                state = self.lock();
                for (w, out) in pass.iter().zip(outputs) {
                    state.done.insert(w.ticket, out);
                }
                self.changed.notify_all();
                continue;
            }
            let wait = oldest.map_or(self.linger, |t| self.linger.saturating_sub(t.elapsed()));
            state = self
                .changed
                .wait_timeout(state, wait.max(Duration::from_micros(50)))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl<B: Backend> DitBatcher<B> {
    /// One forward pass over every caller's windows, split back per caller.
    fn run_pass(&self, pass: &[Waiting<B>]) -> Vec<Tensor<B, 3>> {
        if let [only] = pass {
            return vec![self.model.denoise(only.input.clone())];
        }
        let cat3 = |f: fn(&DitInput<B>) -> Tensor<B, 3>| {
            Tensor::cat(pass.iter().map(|w| f(&w.input)).collect(), 0)
        };
        let cat_int = |f: fn(&DitInput<B>) -> Tensor<B, 2, Int>| {
            Tensor::cat(pass.iter().map(|w| f(&w.input)).collect(), 0)
        };
        let input = DitInput {
            tokens: cat3(|i| i.tokens.clone()),
            token_fields: cat_int(|i| i.token_fields.clone()),
            song_fields: cat_int(|i| i.song_fields.clone()),
            time: Tensor::cat(pass.iter().map(|w| w.input.time.clone()).collect(), 0),
        };
        let out = self.model.denoise(input);
        let mut start = 0;
        pass.iter()
            .map(|w| {
                let count = w.input.tokens.dims()[0];
                let rows = out.clone().narrow(0, start, count);
                start += count;
                rows
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::autoencoder::SeededInit;
    use crate::model::conditions::SONG_FIELDS;
    use crate::model::dit::{TOKEN_FIELDS, field_tensors, tests::tiny};
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `windows` random windows of `tokens` tokens at their own times.
    pub(crate) fn input(seed: u64, windows: usize, tokens: usize) -> DitInput<Flex> {
        let config = tiny();
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let token_fields: Vec<[u8; TOKEN_FIELDS]> = (0..windows * tokens)
            .map(|_| [rng.random_range(0..2u8); TOKEN_FIELDS])
            .collect();
        let song_fields = vec![[1u8; SONG_FIELDS]; windows];
        let (token_fields, song_fields) =
            field_tensors::<Flex>(&config, &token_fields, &song_fields, &device);
        let values: Vec<f32> = (0..windows * tokens * config.latent_dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let times: Vec<f32> = (0..windows).map(|_| rng.random_range(0.0..1.0)).collect();
        DitInput {
            tokens: Tensor::from_data(
                TensorData::new(values, [windows, tokens, config.latent_dim]),
                &device,
            ),
            token_fields,
            song_fields,
            time: Tensor::from_data(TensorData::new(times, [windows]), &device),
        }
    }

    pub(crate) fn values(t: Tensor<Flex, 3>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn workers_share_passes_and_each_gets_exactly_its_own_rows() {
        let device = Default::default();
        let dit = tiny()
            .init_seeded::<Flex>(&device, 1)
            .map(&mut SeededInit::new(ChaCha8Rng::seed_from_u64(5), device));
        let batcher = DitBatcher::new(dit.clone(), Duration::from_millis(200), 64);
        // Four workers, six calls each, windows of two shapes (8 and 12 tokens).
        let calls: Vec<Vec<DitInput<Flex>>> = (0..4u64)
            .map(|w| {
                (0..6u64)
                    .map(|c| {
                        input(
                            10 * w + c,
                            1 + (w + c) as usize % 3,
                            if w == 3 { 12 } else { 8 },
                        )
                    })
                    .collect()
            })
            .collect();
        let got: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = calls
                .iter()
                .map(|mine| {
                    let batcher = &batcher;
                    let _registered = batcher.worker();
                    scope.spawn(move || {
                        let _registered = _registered;
                        mine.iter()
                            .map(|i| values(batcher.denoise(i.clone())))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (mine, out) in calls.iter().zip(&got) {
            for (i, o) in mine.iter().zip(out) {
                assert_eq!(&values(dit.forward(i.clone())), o);
            }
        }
        let counts = batcher.counts();
        assert_eq!(
            counts.windows,
            calls
                .iter()
                .flatten()
                .map(|i| i.tokens.dims()[0] as u64)
                .sum::<u64>()
        );
        assert!(counts.passes < 24, "24 calls in {} passes", counts.passes);
    }

    #[test]
    fn a_lone_caller_goes_at_once_and_a_busy_worker_only_delays_by_the_linger() {
        let device = Default::default();
        let dit = tiny().init_seeded::<Flex>(&device, 1);
        let batcher = DitBatcher::new(dit, Duration::from_millis(20), 64);
        let started = Instant::now();
        batcher.denoise(input(1, 2, 8));
        assert!(
            started.elapsed() < Duration::from_millis(20),
            "no worker registered: no wait"
        );
        let _busy = batcher.worker();
        let _me = batcher.worker();
        let started = Instant::now();
        batcher.denoise(input(2, 1, 8));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(20) && waited < Duration::from_secs(5));
        assert_eq!(
            batcher.counts(),
            BatchCounts {
                passes: 2,
                windows: 3
            }
        );
    }
}
