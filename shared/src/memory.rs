//! How the process's allocator is set up.
//!
//! glibc's `malloc` serves blocks above its mmap threshold (128 KiB at first) from mappings of
//! their own, returned to the system when freed, but raises the threshold to the size of each
//! such block freed, up to 32 MiB. After the converter frees its first piece buffer, buffers of
//! many MiB (pieces, Arrow columns, fragment pages) come from the heaps instead, interleaved
//! with the small chunks a download streams in; the heaps fragment and are not given back, so
//! a long object grows the process far past what the converter holds at any time. A fixed
//! threshold keeps every large buffer in a mapping of its own, so memory follows what is held.
//!
//! Fixing the threshold also fixes the heap's trim threshold at its 128 KiB start: each freed
//! block of a few hundred KiB at the top of the heap (an object's stored bytes, a column) was
//! given back to the system and faulted in again, zeroed, for the next object. A few MiB of
//! free heap are kept instead, per arena; a large object read in pieces still gives everything
//! back between its steps (`release_free_memory`).

/// Blocks at least this large get a mapping of their own.
pub const MMAP_THRESHOLD_BYTES: usize = 1 << 20;

/// Free memory at the top of a heap kept for the next allocations rather than given back.
pub const TRIM_THRESHOLD_BYTES: usize = 4 << 20;

/// Fixes the allocator's mmap threshold at [`MMAP_THRESHOLD_BYTES`] and its trim threshold at
/// [`TRIM_THRESHOLD_BYTES`] (glibc only; a no-op elsewhere). Called first thing by the
/// functions and the command, before any large buffer.
pub fn keep_large_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a tuning parameter of the allocator; setting
        // M_MMAP_THRESHOLD is allowed at any time and affects only later allocations.
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
        if accepted == 0 {
            tracing::warn!(threshold, "the allocator refused a fixed mmap threshold");
        }
        let trim = libc::c_int::try_from(TRIM_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: as above, a tuning parameter for later frees.
        if unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, trim) } == 0 {
            tracing::warn!(trim, "the allocator refused a fixed trim threshold");
        }
    }
}

/// Gives the pages of freed memory back to the system (glibc's `malloc_trim`; a no-op
/// elsewhere). Blocks freed in the middle of a heap are kept by glibc until then: a large
/// object's steps free many small ones (rows split over many partitions, writers staged and
/// replaced), so the converter calls this between steps, and the process follows what it
/// holds rather than what it once held.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only returns free pages to the system; it is safe to call from
        // any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
