//! candle's thread count, fixed once per process.
//!
//! candle 0.11 asks for its thread count on every matrix product, and unless
//! `RAYON_NUM_THREADS` is set it counts the physical cores again each time (`num_cpus` reads
//! and parses `/proc/cpuinfo` on Linux). On decoding, where a token is a few hundred small
//! products, that cost a third of the speed: f32 21 → 28–32 tokens/s, quantized 40 → 52–64
//! tokens/s on the 2-core development machine.

/// Sets `RAYON_NUM_THREADS` to the physical core count (candle's own default) unless the user
/// set it.
///
/// # Safety
/// Changes the environment: call it first thing in `main`, before any other thread exists.
pub unsafe fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = num_cpus::get_physical().max(1);
        // SAFETY: the caller guarantees no other thread reads or writes the environment now.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}
