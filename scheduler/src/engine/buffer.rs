//! Aligned I/O buffers for O_DIRECT.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

/// One contiguous, aligned allocation cut into `count` slots of `slot_size` bytes.
///
/// O_DIRECT needs the memory address aligned to the device's DIO memory alignment (statx
/// `stx_dio_mem_align`, at most a page in practice); we align to at least 4096 bytes. The arena
/// is allocated with `std::alloc` and freed in `Drop`.
pub struct BufferArena {
    ptr: NonNull<u8>,
    layout: Layout,
    slot_size: usize,
    count: usize,
}

// SAFETY: the arena owns its allocation exclusively; moving it to another thread moves that
// ownership. Concurrent access to distinct slots goes through `slot_ptr`, whose callers uphold
// the no-overlap invariant documented there.
unsafe impl Send for BufferArena {}
unsafe impl Sync for BufferArena {}

impl BufferArena {
    /// Allocates `count` slots of `slot_size` bytes aligned to `align` (a power of two, raised to
    /// at least 4096), filled with incompressible pseudo-random bytes from `seed`.
    ///
    /// Returns `None` when the size overflows or the allocator refuses.
    pub fn new_random(count: usize, slot_size: usize, align: usize, seed: u64) -> Option<Self> {
        let align = align.max(4096).next_power_of_two();
        let size = count.checked_mul(slot_size)?.max(align);
        let layout = Layout::from_size_align(size, align).ok()?;
        // SAFETY: layout has non-zero size (at least `align`).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        let mut arena = BufferArena {
            ptr,
            layout,
            slot_size,
            count,
        };
        let mut rng = super::rng::Rng::new(seed);
        for chunk in arena.as_mut_slice().chunks_mut(8) {
            let v = rng.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Some(arena)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for layout.size() bytes and uniquely borrowed through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
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
        unsafe { self.ptr.as_ptr().add(i * self.slot_size) }
    }

    /// The whole arena as one iovec, for io_uring buffer registration.
    pub fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.as_ptr().cast(),
            iov_len: self.layout.size(),
        }
    }

    /// Makes slot `i` unique before a write: stamps `(sequence, offset)` into the first 16
    /// bytes of every 4 KiB block, so neither compression nor deduplication in the device can
    /// flatter the result (the rest of the slot stays random).
    ///
    /// # Safety
    ///
    /// Slot `i` must not be in flight, and no other thread may use it meanwhile.
    pub unsafe fn stamp(&self, i: usize, sequence: u64, offset: u64) {
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
}
