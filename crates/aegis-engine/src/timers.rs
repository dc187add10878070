//! The core's timers, kept by the driver: one deadline per timer name, fired in deadline
//! order once the clock reaches it (tigerbeetle's `tick`). The node sleeps until
//! [`TimerTable::next_deadline`]; the simulator schedules a wake-up event at it.

use std::collections::BTreeMap;

/// Armed timers by name. A core has a handful of timer names, so the table is bounded by the
/// size of its timer type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTable<T: Ord> {
    deadlines: BTreeMap<T, u64>,
}

impl<T: Ord + Copy> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            deadlines: BTreeMap::new(),
        }
    }
}

impl<T: Ord + Copy> TimerTable<T> {
    /// Arms `timer` for `deadline_ms`, replacing its earlier deadline.
    pub fn set(&mut self, timer: T, deadline_ms: u64) {
        self.deadlines.insert(timer, deadline_ms);
    }

    pub fn cancel(&mut self, timer: T) {
        self.deadlines.remove(&timer);
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.values().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now_ms` (ties by timer order).
    pub fn pop_due(&mut self, now_ms: u64) -> Option<T> {
        let (timer, _) = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .min_by_key(|(timer, deadline)| (**deadline, **timer))?;
        let timer = *timer;
        self.deadlines.remove(&timer);
        Some(timer)
    }

    pub fn deadline(&self, timer: T) -> Option<u64> {
        self.deadlines.get(&timer).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let mut table = TimerTable::default();
        table.set('b', 30);
        table.set('a', 20);
        table.set('c', 20);
        table.set('b', 10);
        assert_eq!(table.next_deadline(), Some(10));
        assert_eq!(table.pop_due(9), None);
        assert_eq!(table.pop_due(25), Some('b'));
        assert_eq!(table.pop_due(25), Some('a'));
        table.cancel('c');
        assert_eq!(table.pop_due(25), None);
        assert!(table.is_empty());
    }
}
