//! Tuning of glibc's allocator for a long-running service on a small host.
//!
//! glibc gives each thread that allocates its own arena (up to eight per
//! core). Every handler, worker and connection thread then keeps its own
//! pool of freed memory that no other thread reuses, and idle RSS grows with
//! the thread count. Two arenas are plenty for a service whose threads
//! mostly wait. After bursts (a flood of rejected requests, say), freed
//! memory at the top of an arena stays mapped until something returns it:
//! `release_free_memory` asks glibc to hand it back to the OS.
//!
//! These are the only two foreign calls in the program; other platforms and
//! C libraries keep their defaults.

/// Call once at start-up, before any thread is spawned.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator parameter; called before
    // other threads exist, so no allocation races with the change.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap memory to the OS. Cheap when there is none; called
/// periodically by the janitor.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
