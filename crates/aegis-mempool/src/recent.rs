//! The window of recently committed ids: a set with a fixed capacity that forgets the oldest
//! id first.

use std::collections::{BTreeSet, VecDeque};

use aegis_types::Hash;

/// At most `capacity` ids, in the order they were first remembered. Remembering an id that
/// is already in the window changes nothing (it keeps its place).
#[derive(Debug, Clone)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<Hash>,
    members: BTreeSet<Hash>,
}

impl RecentIds {
    /// An empty window. `capacity` is validated non-zero by the configuration; a zero here
    /// would remember nothing.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            capacity,
            order: VecDeque::new(),
            members: BTreeSet::new(),
        }
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.members.contains(id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Remembers `id`, forgetting the oldest id if the window is full.
    pub fn insert(&mut self, id: Hash) {
        if self.capacity == 0 || !self.members.insert(id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            let forgotten = self.members.remove(&oldest);
            assert!(forgotten, "recent window order and members disagree");
        }
        self.order.push_back(id);
        assert_eq!(self.order.len(), self.members.len());
        assert!(self.order.len() <= self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn remembers_up_to_capacity() {
        let mut recent = RecentIds::new(3);
        for n in 1..=3 {
            recent.insert(id(n));
        }
        assert_eq!(recent.len(), 3);
        assert!((1..=3).all(|n| recent.contains(&id(n))));
    }

    #[test]
    fn forgets_the_oldest_first() {
        let mut recent = RecentIds::new(3);
        for n in 1..=5 {
            recent.insert(id(n));
        }
        assert_eq!(recent.len(), 3);
        assert!(!recent.contains(&id(1)));
        assert!(!recent.contains(&id(2)));
        assert!((3..=5).all(|n| recent.contains(&id(n))));
    }

    #[test]
    fn a_repeated_id_keeps_its_place() {
        let mut recent = RecentIds::new(2);
        recent.insert(id(1));
        recent.insert(id(2));
        recent.insert(id(1));
        assert_eq!(recent.len(), 2);
        recent.insert(id(3));
        // 1 was remembered first, so it goes first even though it was seen again.
        assert!(!recent.contains(&id(1)));
        assert!(recent.contains(&id(2)));
        assert!(recent.contains(&id(3)));
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut recent = RecentIds::new(0);
        recent.insert(id(1));
        assert_eq!(recent.len(), 0);
        assert!(!recent.contains(&id(1)));
    }
}
