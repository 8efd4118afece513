//! Which Burn backend a training command runs on, and the one place that turns that choice
//! into a concrete autodiff backend type.

/// Backend for training: the two CPU backends, or an NVIDIA GPU in builds with `cuda`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Backend {
    Flex,
    Ndarray,
    /// The first CUDA device (needs a refrain built with `--features cuda`).
    Cuda,
}

impl Backend {
    /// The faster backend for the DiT (docs/MODEL_CARD.md, "Backend") where the build has it.
    #[cfg(feature = "ndarray")]
    pub(crate) const FOR_DIT: Backend = Backend::Ndarray;
    #[cfg(not(feature = "ndarray"))]
    pub(crate) const FOR_DIT: Backend = Backend::Flex;
}

#[cfg(not(feature = "ndarray"))]
pub(crate) const NO_NDARRAY: &str = "this refrain was built without the ndarray backend; rebuild \
                                     with default features, or use --backend flex";
#[cfg(not(feature = "cuda"))]
pub(crate) const NO_CUDA: &str = "--backend cuda needs a refrain built with the cuda feature \
                                  (cargo build --release -p refrain --features cuda)";

/// Runs `work`, turning the panic that CUDA's first use raises without a usable GPU, driver
/// or NVRTC into an error in words. The backend panics on its own thread and the caller sees
/// only a broken channel, so the first panic's message is caught by a hook (which also keeps
/// the backtrace off the terminal) and named in the error.
#[cfg(feature = "cuda")]
pub(crate) fn on_cuda<T>(
    what: &str,
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let first = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = first.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = crate::panic_message(info.payload());
        if let Ok(mut first) = seen.lock() {
            first.get_or_insert(message);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    std::panic::set_hook(previous);
    result.map_err(|_| {
        let why = first
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .unwrap_or_default();
        anyhow::anyhow!("{what}: no CUDA device could be used ({why})")
    })?
}

/// Fails in words, before any long work, when the first CUDA device cannot be used.
#[cfg(feature = "cuda")]
pub(crate) fn check_cuda(what: &str) -> anyhow::Result<()> {
    on_cuda(what, || {
        let device = burn::backend::cuda::CudaDevice::default();
        let probe = burn::tensor::Tensor::<burn::backend::Cuda, 1>::ones([1], &device);
        let _ = probe.into_data();
        Ok(())
    })
}

/// Without the cuda feature every CUDA request is refused.
#[cfg(not(feature = "cuda"))]
pub(crate) fn check_cuda(_: &str) -> anyhow::Result<()> {
    Err(anyhow::anyhow!(NO_CUDA))
}

/// Calls `train::<Autodiff<B>>(args...)` with `B` the backend chosen by `$backend`; a backend
/// this build lacks is an error in words.
macro_rules! on_training_backend {
    ($backend:expr, $train:ident($($arg:expr),* $(,)?)) => {
        match $backend {
            $crate::backend::Backend::Flex => {
                $train::<burn::backend::Autodiff<burn::backend::Flex>>($($arg),*)
            }
            #[cfg(feature = "ndarray")]
            $crate::backend::Backend::Ndarray => {
                $train::<burn::backend::Autodiff<burn::backend::NdArray>>($($arg),*)
            }
            #[cfg(not(feature = "ndarray"))]
            $crate::backend::Backend::Ndarray => Err(anyhow::anyhow!($crate::backend::NO_NDARRAY)),
            #[cfg(feature = "cuda")]
            $crate::backend::Backend::Cuda => $crate::backend::on_cuda("--backend cuda", || {
                $train::<burn::backend::Autodiff<burn::backend::Cuda>>($($arg),*)
            }),
            #[cfg(not(feature = "cuda"))]
            $crate::backend::Backend::Cuda => Err(anyhow::anyhow!($crate::backend::NO_CUDA)),
        }
    };
}
pub(crate) use on_training_backend;
