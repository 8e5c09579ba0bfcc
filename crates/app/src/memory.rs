//! Allocator tuning for training and serving. The binaries use mimalloc; by default it hands
//! freed pages back to the OS after 10 ms, and a training step, which frees and reallocates
//! gigabytes of activations every second, then spends a third of its time faulting in and
//! zeroing fresh pages (measured: 52 -> 102 tokens/s on `bench train`); a server's decoding
//! steps, a few milliseconds apart, likewise. While a [`HoldPages`] lives, freed memory is kept
//! for reuse; dropping the last one returns the surplus to the OS.

/// mimalloc's `mi_option_purge_delay` (v3 header order; libmimalloc-sys is pinned by Cargo.lock).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's default purge delay, milliseconds.
const DEFAULT_DELAY_MS: std::os::raw::c_long = 10;

/// Keeps freed memory in the allocator while alive (any one of them: holds nest, from any
/// thread, and purging resumes when the last one is dropped).
pub struct HoldPages(());

/// Holds alive.
static HOLDS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl HoldPages {
    /// Stops purging until dropped.
    pub fn new() -> HoldPages {
        let mut holds = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        if *holds == 0 {
            // SAFETY: setting an option is thread-safe in mimalloc and takes no pointers.
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
        }
        *holds += 1;
        HoldPages(())
    }
}

impl Default for HoldPages {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HoldPages {
    fn drop(&mut self) {
        let mut holds = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        *holds -= 1;
        if *holds == 0 {
            // SAFETY: as above; `mi_collect` only walks mimalloc's own structures.
            unsafe {
                libmimalloc_sys::mi_option_set(PURGE_DELAY, DEFAULT_DELAY_MS);
                libmimalloc_sys::mi_collect(true);
            }
        }
    }
}
