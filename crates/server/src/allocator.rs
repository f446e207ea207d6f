//! Allocator settings that keep the resident set close to the memory in use (glibc).
//!
//! glibc's `malloc` gives each thread that allocates an arena of its own (up to 8 per core) and keeps
//! freed memory in the arena for reuse; after a large block is freed it also serves later large blocks
//! from the arenas instead of mapping them. With several inference workers each allocating megabyte-sized
//! activation buffers, every worker's arena then keeps its own high-water mark, and the resident set grows
//! with the worker count far beyond the memory in use: measured with 8 workers and a 64 MiB budget under
//! angiogram load, 273 MiB peak where at most about 60 MiB were in use at once. With one arena
//! ([`ARENA_MAX`]) the freed buffers of one worker are reused by the next, and the peak follows the memory
//! in use (55 MiB in the same test).
//!
//! The alternative, a fixed mmap threshold (each large buffer its own mapping, returned when freed),
//! bounds the resident set as well but cost two thirds of the angiogram throughput (page faults and
//! unmapping on every pass); one arena measured no slower than the default for MNIST and angiograms.
//!
//! glibc reads its tunables once, when the program starts, from `GLIBC_TUNABLES`: [`ensure_tuned`]
//! re-executes the program once with the setting added (same process id, arguments and environment
//! otherwise). An operator's own `glibc.malloc.arena_max` is kept. On other C libraries it does nothing.

/// Allocator arenas shared by all threads.
pub const ARENA_MAX: usize = 1;

/// Set in the environment of the re-executed program.
const MARKER: &str = "MORE_SERVER_MALLOC_TUNED";

/// Whether the allocator runs with the setting: after [`ensure_tuned`] re-executed the program, or when
/// the operator set the arena count.
pub fn is_tuned() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
        && (std::env::var_os(MARKER).is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max")))
}

/// Re-executes the program with the allocator setting unless it already has it. Returns only when it has
/// it, or when re-executing failed (then the program runs as it is; [`is_tuned`] says which).
pub fn ensure_tuned() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if is_tuned() {
            return;
        }
        let setting = format!("glibc.malloc.arena_max={ARENA_MAX}");
        let tunables = match std::env::var("GLIBC_TUNABLES") {
            Ok(t) if !t.is_empty() => format!("{t}:{setting}"),
            _ => setting,
        };
        let Ok(exe) = std::env::current_exe() else { return };
        // `exec` replaces this process and only returns on failure.
        let _error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env(MARKER, "1")
            .exec();
    }
}
