//! Allocator settings that keep the resident set close to the memory in use (glibc).
//!
//! glibc's `malloc` gives each thread that allocates its own arena and, each time a large block is freed,
//! raises its threshold for serving large blocks by `mmap`, so later large blocks come from the arenas,
//! where freed memory is kept for reuse. With several inference workers each allocating megabyte-sized
//! activation buffers, the resident set then grows with the worker count far beyond the memory in use:
//! measured with 8 workers and a 64 MiB budget under angiogram load, 273 MiB peak where at most about
//! 60 MiB were ever in use. A fixed threshold ([`MMAP_THRESHOLD`]) makes every block of that size or more
//! a mapping of its own, returned to the system when freed, so the resident set follows the budget.
//!
//! glibc reads its tunables once, when the program starts, from `GLIBC_TUNABLES`: [`ensure_tuned`]
//! re-executes the program once with the setting added (same process id, arguments and environment
//! otherwise). An operator's own `glibc.malloc.mmap_threshold` is kept. On other C libraries it does
//! nothing.

/// Blocks of this many bytes or more are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Set in the environment of the re-executed program.
const MARKER: &str = "MORE_SERVER_MALLOC_TUNED";

/// Whether the allocator runs with the setting: after [`ensure_tuned`] re-executed the program, or when
/// the operator set the threshold.
pub fn is_tuned() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
        && (std::env::var_os(MARKER).is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.mmap_threshold")))
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
        let setting = format!("glibc.malloc.mmap_threshold={MMAP_THRESHOLD}");
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
