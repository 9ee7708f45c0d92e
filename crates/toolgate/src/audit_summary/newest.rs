//! The newest few items of a list, kept in bounded memory however many are offered.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Ordering key of a line: its timestamp, then its reading order.
pub(super) type Key = (u64, u64);

/// The newest `cap` items offered, by key: a min-heap whose root is the first to go.
pub(super) struct Newest<T> {
    cap: usize,
    heap: BinaryHeap<Reverse<Keyed<T>>>,
}

/// Orders by key alone, so the items need no order of their own.
struct Keyed<T> {
    key: Key,
    item: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl<T> Newest<T> {
    pub(super) fn new(cap: usize) -> Newest<T> {
        Newest {
            cap,
            heap: BinaryHeap::new(),
        }
    }

    /// Keeps the item if it is among the newest; builds it only then, so the strings of the
    /// many lines that fall out are never copied.
    pub(super) fn offer(&mut self, key: Key, make: impl FnOnce() -> T) {
        if self.cap == 0 {
            return;
        }
        if self.heap.len() == self.cap {
            match self.heap.peek() {
                Some(Reverse(oldest)) if oldest.key < key => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Reverse(Keyed { key, item: make() }));
    }

    pub(super) fn newest_first(self) -> Vec<T> {
        // Ascending order of `Reverse` is newest first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(k)| k.item)
            .collect()
    }
}
