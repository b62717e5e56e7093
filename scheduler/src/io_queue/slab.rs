//! A generational slab: entries addressed by (index, generation), so that a handle to a freed
//! and reused entry is recognised as stale instead of reaching the new occupant.

/// One entry: its current generation and, while occupied, its value.
#[derive(Debug)]
struct Entry<V> {
    generation: u32,
    value: Option<V>,
}

/// Values addressed by `(index, generation)`; freed indexes are reused (last freed first), so
/// a warm slab does not allocate.
#[derive(Debug)]
pub(crate) struct Slab<V> {
    entries: Vec<Entry<V>>,
    free: Vec<u32>,
    len: usize,
}

impl<V> Slab<V> {
    pub(crate) fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value`; returns its (index, generation), or the value back when 2^32 entries
    /// are live.
    #[inline]
    pub(crate) fn insert(&mut self, value: V) -> Result<(u32, u32), V> {
        if let Some(i) = self.free.pop() {
            let e = &mut self.entries[i as usize];
            e.value = Some(value);
            self.len += 1;
            return Ok((i, e.generation));
        }
        let Ok(i) = u32::try_from(self.entries.len()) else {
            return Err(value);
        };
        self.entries.push(Entry {
            generation: 0,
            value: Some(value),
        });
        self.len += 1;
        Ok((i, 0))
    }

    /// The value at `index` if it is live and of `generation`.
    #[inline]
    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&V> {
        match self.entries.get(index as usize) {
            Some(e) if e.generation == generation => e.value.as_ref(),
            _ => None,
        }
    }

    /// As [`get`](Self::get), mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut V> {
        match self.entries.get_mut(index as usize) {
            Some(e) if e.generation == generation => e.value.as_mut(),
            _ => None,
        }
    }

    /// The live value at `index`, whatever its generation (indexes the slab handed out itself).
    #[inline]
    pub(crate) fn at(&self, index: u32) -> Option<&V> {
        self.entries.get(index as usize)?.value.as_ref()
    }

    /// As [`at`](Self::at), mutably.
    #[inline]
    pub(crate) fn at_mut(&mut self, index: u32) -> Option<&mut V> {
        self.entries.get_mut(index as usize)?.value.as_mut()
    }

    /// The generation of the entry at `index` (meaningful while it is live).
    #[inline]
    pub(crate) fn generation(&self, index: u32) -> u32 {
        self.entries.get(index as usize).map_or(0, |e| e.generation)
    }

    /// Takes the value out of `index` (any generation) and frees the index; the next occupant
    /// gets a new generation.
    #[inline]
    pub(crate) fn remove_at(&mut self, index: u32) -> Option<V> {
        let e = self.entries.get_mut(index as usize)?;
        let v = e.value.take()?;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        Some(v)
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_miss_and_indexes_are_reused() {
        let mut s = Slab::new();
        let (a, ga) = s.insert("a").unwrap();
        let (b, gb) = s.insert("b").unwrap();
        assert_eq!(s.get(a, ga), Some(&"a"));
        assert_eq!(s.remove_at(a), Some("a"));
        assert_eq!(s.get(a, ga), None);
        let (c, gc) = s.insert("c").unwrap();
        assert_eq!(c, a, "freed index reused");
        assert_ne!(gc, ga);
        assert_eq!(s.get(c, ga), None, "old generation is stale");
        assert_eq!(s.get(c, gc), Some(&"c"));
        assert_eq!(s.get(b, gb), Some(&"b"));
        assert_eq!(s.get(99, 0), None);
        assert_eq!(s.remove_at(99), None);
        assert_eq!(s.len(), 2);
    }
}
