//! Aligned I/O buffers for O_DIRECT.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// Transparent huge page size on x86-64 and arm64 (4 KiB base pages), bytes.
const HUGE_PAGE: usize = 2 << 20;

/// Largest request that stays far below any device segment limit over 4 KiB pages (16 pages);
/// slots larger than this get a huge-page arena.
const SMALL_REQUEST: usize = 64 << 10;

/// Smallest memory alignment of an arena: one 4 KiB page, so that a slot of a page-multiple
/// size never straddles more pages than it must (each page crossed costs the device a segment).
pub(crate) const MIN_ALIGN: usize = 4096;

/// One contiguous, aligned allocation cut into `count` slots of `slot_size` bytes.
///
/// O_DIRECT needs the memory address aligned to the device's DIO memory alignment (statx
/// `stx_dio_mem_align`): every slot starts at a multiple of it (slots are spaced by their size
/// rounded up to it), and the arena itself is aligned to it or to one page, whichever is
/// larger. The arena is allocated with `std::alloc` and freed in `Drop`.
///
/// Arenas of 2 MiB or more, and arenas whose slots exceed 64 KiB, are 2 MiB-aligned, rounded
/// up to whole 2 MiB and advised for transparent huge pages: a large request over scattered
/// 4 KiB pages needs one device segment per page, and a 1 MiB request (256 pages) then exceeds
/// a typical `max_segments` (254 on virtio, 127 to 255 on NVMe) and reaches the disk split in
/// two, so the tool would measure smaller requests than it claims. A registered (fixed) buffer
/// keeps one segment per page even where pages happen to be contiguous, so it is only used for
/// large requests when huge pages back the arena ([`BufferArena::registrable`]).
///
/// The arena hands out raw slot pointers only; who may touch which slot when is up to its
/// owner (`Ring` tracks the requests in flight per slot and stamps only idle slots).
pub struct BufferArena {
    ptr: NonNull<u8>,
    layout: Layout,
    slot_size: usize,
    /// Distance between slot starts: `slot_size` rounded up to the slot alignment.
    stride: usize,
    count: usize,
    huge: bool,
}

// SAFETY: the arena owns its allocation exclusively; moving it to another thread moves that
// ownership. Concurrent access to distinct slots goes through `slot_ptr`, whose callers uphold
// the no-overlap invariant documented there.
unsafe impl Send for BufferArena {}
unsafe impl Sync for BufferArena {}

impl BufferArena {
    /// Allocates `count` slots of `slot_size` bytes, each aligned to `align` (raised to a power
    /// of two), in an arena aligned to that and to at least [`MIN_ALIGN`], filled with
    /// incompressible pseudo-random bytes from `seed`.
    ///
    /// Returns `None` when the size or alignment overflows or the allocator refuses.
    pub fn new_random(count: usize, slot_size: usize, align: usize, seed: u64) -> Option<Self> {
        let slot_align = align.max(1).checked_next_power_of_two()?;
        let stride = slot_size.checked_next_multiple_of(slot_align)?;
        let mut align = slot_align.max(MIN_ALIGN);
        let mut size = count.checked_mul(stride)?.max(align);
        if size >= HUGE_PAGE || slot_size > SMALL_REQUEST {
            align = align.max(HUGE_PAGE);
            size = size.checked_next_multiple_of(HUGE_PAGE)?;
        }
        let layout = Layout::from_size_align(size, align).ok()?;
        // SAFETY: layout has non-zero size (at least `align`).
        let ptr = NonNull::new(unsafe { alloc(layout) })?;
        // Advice before the first touch, so the faults below allocate huge pages.
        let huge = size >= HUGE_PAGE && thp_available() && {
            // SAFETY: ptr..ptr+size is our own fresh allocation; the advice only changes how its
            // pages are backed. On failure (THP off, old kernel) 4 KiB pages back it.
            unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_HUGEPAGE) == 0 }
        };
        let words = size / 8;
        let mut rng = super::rng::Rng::new(seed);
        for i in 0..words {
            // SAFETY: i < size / 8 keeps the write inside the allocation, whose alignment (at
            // least MIN_ALIGN) makes every u64 slot aligned; writing initialises the memory.
            unsafe { ptr.as_ptr().cast::<u64>().add(i).write(rng.next_u64()) };
        }
        // The allocator may hand back memory already faulted in with small pages (the advice
        // only affects new faults): collapse it into huge pages now (Linux 6.1+). If that fails
        // the arena keeps small pages and is not registered for large requests; before 6.1
        // (EINVAL) the advice is all there is and is trusted.
        let huge = huge && {
            // SAFETY: as for the advice above; collapsing keeps the contents.
            let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_COLLAPSE) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        };
        Some(BufferArena {
            ptr,
            layout,
            slot_size,
            stride,
            count,
            huge,
        })
    }

    /// Whether transparent huge pages were requested for the arena (and THP is not disabled).
    #[cfg(test)]
    pub fn huge_pages(&self) -> bool {
        self.huge
    }

    /// Whether registering the arena with io_uring keeps `request_size`-byte requests whole:
    /// requests up to 64 KiB (16 pages, far below any segment limit), or a huge-page arena.
    pub fn registrable(&self, request_size: usize) -> bool {
        request_size <= SMALL_REQUEST || self.huge
    }

    /// Size of one slot, bytes.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Number of slots.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Raw pointer to slot `i`.
    ///
    /// Callers must not let two in-flight requests (or a request and a CPU write) use the same
    /// slot at once; the engines give each in-flight request its own slot.
    pub fn slot_ptr(&self, i: usize) -> *mut u8 {
        assert!(i < self.count, "slot {i} out of {}", self.count);
        // SAFETY: i < count, so the offset stays inside the allocation.
        unsafe { self.ptr.as_ptr().add(i * self.stride) }
    }

    /// The whole arena as one iovec, for io_uring buffer registration.
    pub fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.as_ptr().cast(),
            iov_len: self.layout.size(),
        }
    }

    /// Memory alignment of the arena, bytes (slots are aligned to what `new_random` was asked).
    pub fn align(&self) -> usize {
        self.layout.align()
    }

    /// Makes slot `i` unique before a write: stamps `(sequence, offset)` into the first 16
    /// bytes of every 4 KiB block, so neither compression nor deduplication in the device can
    /// flatter the result (the rest of the slot stays random).
    ///
    /// `Ring::stamp` is the checked way to call it.
    ///
    /// # Safety
    ///
    /// Slot `i` must not be in flight, and no other thread may use it meanwhile.
    pub(crate) unsafe fn stamp(&self, i: usize, sequence: u64, offset: u64) {
        let base = self.slot_ptr(i);
        let mut block = 0;
        while block + 16 <= self.slot_size {
            let words = [
                sequence ^ 0x9e37_79b9_7f4a_7c15,
                offset.wrapping_add(block as u64),
            ];
            // SAFETY: block + 16 <= slot_size keeps the write inside slot i, which the caller
            // guarantees is not in flight; unaligned writes are allowed by write_unaligned.
            unsafe {
                let p = base.add(block).cast::<[u64; 2]>();
                p.write_unaligned(words);
            }
            block += 4096;
        }
    }
}

/// Whether transparent huge pages can back an `madvise`d mapping: the mode in
/// `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise` (read once).
fn thp_available() -> bool {
    static MODE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|m| m.contains("[always]") || m.contains("[madvise]"))
            .unwrap_or(false)
    })
}

impl Drop for BufferArena {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated with exactly this layout in `new_random`.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_random() {
        let a = BufferArena::new_random(4, 8192, 512, 1).unwrap();
        for i in 0..4 {
            assert_eq!(a.slot_ptr(i) as usize % 4096, 0);
        }
        // SAFETY: the arena is alive and no request is in flight.
        let bytes = unsafe { std::slice::from_raw_parts(a.slot_ptr(0), 8192) };
        let zeros = bytes.iter().filter(|&&b| b == 0).count();
        assert!(
            zeros < 8192 / 64,
            "buffer looks compressible: {zeros} zero bytes"
        );
    }

    #[test]
    fn stamp_makes_slots_unique() {
        let a = BufferArena::new_random(2, 4096, 4096, 7).unwrap();
        // SAFETY: nothing is in flight in this test.
        unsafe {
            a.stamp(0, 1, 0);
            a.stamp(1, 1, 0);
        }
        // SAFETY: both slots are inside the live arena.
        let (s0, s1) = unsafe {
            (
                std::slice::from_raw_parts(a.slot_ptr(0), 16),
                std::slice::from_raw_parts(a.slot_ptr(1), 16),
            )
        };
        assert_eq!(s0, s1, "same stamp gives same header");
        // SAFETY: as above.
        unsafe { a.stamp(1, 2, 0) };
        // SAFETY: as above.
        let s1 = unsafe { std::slice::from_raw_parts(a.slot_ptr(1), 16) };
        assert_ne!(s0, s1);
    }

    /// AnonHugePages (bytes) of the mapping that holds `addr`, from /proc/self/smaps.
    fn huge_bytes_at(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let head = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = head.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    return kb
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .map(|k| k << 10);
                }
            }
        }
        None
    }

    #[test]
    fn large_arenas_are_backed_by_huge_pages() {
        if !thp_available() {
            eprintln!("SKIP: transparent huge pages are disabled on this machine");
            return;
        }
        let a = BufferArena::new_random(4, 1 << 20, 4096, 3).unwrap();
        assert_eq!(a.slot_ptr(0) as usize % HUGE_PAGE, 0, "2 MiB-aligned");
        assert!(a.huge_pages() && a.registrable(1 << 20));
        let huge = huge_bytes_at(a.slot_ptr(0) as usize).expect("arena mapping in smaps");
        assert!(
            huge >= 4 << 20,
            "only {huge} bytes of the 4 MiB arena are in huge pages"
        );
        // Small arenas stay on small pages and register only for small requests.
        let small = BufferArena::new_random(128, 4096, 4096, 3).unwrap();
        assert!(!small.huge_pages() && small.registrable(4096) && !small.registrable(1 << 20));
        // One slot for a large request (a thread of the threads engine) is huge-backed too,
        // rounded up to a whole huge page.
        let one = BufferArena::new_random(1, 1 << 20, 4096, 3).unwrap();
        assert_eq!(one.slot_ptr(0) as usize % HUGE_PAGE, 0, "2 MiB-aligned");
        assert!(one.huge_pages() && one.registrable(1 << 20));
        let huge = huge_bytes_at(one.slot_ptr(0) as usize).expect("arena mapping in smaps");
        assert!(
            huge >= 1 << 20,
            "only {huge} bytes of the slot are in huge pages"
        );
    }

    #[test]
    fn alignment_is_at_least_a_page_and_never_panics() {
        for (asked, arena, slot) in [
            (0, 4096, 1),
            (512, 4096, 512),
            (3000, 4096, 4096),
            (8192, 8192, 8192),
            (1 << 16, 1 << 16, 1 << 16),
        ] {
            // 4 KiB slots; and 512-byte ones, which stay packed unless asked otherwise.
            for size in [4096, 512] {
                let a = BufferArena::new_random(3, size, asked, 5).unwrap();
                assert_eq!(a.align(), arena, "asked {asked}");
                for i in 0..3 {
                    let at = a.slot_ptr(i) as usize - a.slot_ptr(0) as usize;
                    assert_eq!(a.slot_ptr(i) as usize % slot, 0, "asked {asked}, slot {i}");
                    assert_eq!(at, i * size.next_multiple_of(slot), "asked {asked}");
                }
            }
        }
        // Huge-page arenas keep their 2 MiB alignment whatever is asked.
        assert_eq!(
            BufferArena::new_random(4, 1 << 20, 512, 5).unwrap().align(),
            HUGE_PAGE
        );
        // Sizes or alignments that overflow are refused, not a panic.
        assert!(BufferArena::new_random(1, 4096, usize::MAX, 5).is_none());
        assert!(BufferArena::new_random(usize::MAX, 4096, 4096, 5).is_none());
    }
}
