//! The audio side of a live session under an allocation guard: a counting global allocator
//! (for this test binary) that counts the allocations made on a thread while it is marked,
//! the way kira holds its audio thread to `assert_no_alloc`.

use refrain_engine::music::Style;
use refrain_engine::plan::Request;
use refrain_engine::session::{Control, Quantum, SessionBuilder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct CountingAllocator;

static ALLOCATIONS_WHILE_GUARDED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised, so reading it never allocates (which would recurse).
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if GUARDED.with(|g| g.get()) {
        ALLOCATIONS_WHILE_GUARDED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's own arguments, so
// the allocator's contract holds exactly as it does for `System`; the counting touches only a
// const thread-local and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_allocation();
        // SAFETY: `ptr` came from `System` with this layout, as the caller promises.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; `ptr` and `layout` are the caller's, from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` with this thread's allocations counted; returns how many it made.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS_WHILE_GUARDED.load(Ordering::Relaxed);
    GUARDED.with(|g| g.set(true));
    f();
    GUARDED.with(|g| g.set(false));
    ALLOCATIONS_WHILE_GUARDED.load(Ordering::Relaxed) - before
}

#[test]
fn the_guard_sees_an_allocation() {
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);
}

#[test]
fn the_audio_side_never_allocates() {
    let (mut audio, mut handle) = SessionBuilder::new(Request {
        style: Some(Style::Lofi),
        bpm: Some(90.0),
        seed: 9,
        ..Request::default()
    })
    .start()
    .expect("a session");
    let mut buffer = vec![0.0f32; 512];
    let started = Instant::now();
    let mut pulled = 0usize;
    let mut pulls = 0;
    // Real-time pacing is not needed here: the pull side runs as an audio callback would,
    // before the music starts (silence), while it plays, across controls and a pause.
    while pulled < 48_000 * 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "no music came");
        let got = {
            let mut got = 0;
            let allocations = allocations_in(|| got = audio.pull(&mut buffer));
            assert_eq!(allocations, 0, "pull {pulls} allocated");
            got
        };
        pulled += got;
        pulls += 1;
        if pulls == 400 {
            handle.set_intensity(0.3, Quantum::Beat).unwrap();
            handle.send(Control::Stinger, Quantum::Bar).unwrap();
        }
        if pulls == 600 {
            handle.send(Control::Pause, Quantum::Beat).unwrap();
        }
        if pulls == 700 {
            handle.send(Control::Resume, Quantum::Beat).unwrap();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(pulled > 0);
}
