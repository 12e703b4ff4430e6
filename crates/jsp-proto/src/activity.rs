//! Bookkeeping that lets an endpoint with many connections do work proportional to what changed,
//! not to how many connections it holds: a set of connection timers ordered by deadline, a queue
//! of connections that may have something to send, and the list of connections touched since the
//! driver last looked (for event dispatch).

use std::collections::{BTreeSet, VecDeque};

use crate::time::Instant;

/// Per-endpoint activity tracking, indexed by connection slot.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    timers: BTreeSet<(Instant, usize)>,
    timer_at: Vec<Option<Instant>>,
    dirty: Vec<usize>,
    dirty_flag: Vec<bool>,
    ready: VecDeque<usize>,
    ready_flag: Vec<bool>,
    active: Vec<usize>,
    active_flag: Vec<bool>,
}

impl Activity {
    fn ensure(&mut self, i: usize) {
        if i >= self.timer_at.len() {
            let n = i + 1;
            self.timer_at.resize(n, None);
            self.dirty_flag.resize(n, false);
            self.ready_flag.resize(n, false);
            self.active_flag.resize(n, false);
        }
    }

    /// The connection's timers may have changed.
    pub(crate) fn mark_timer(&mut self, i: usize) {
        self.ensure(i);
        if !self.dirty_flag[i] {
            self.dirty_flag[i] = true;
            self.dirty.push(i);
        }
    }

    /// Something happened to the connection: it may want to send, and may have events.
    pub(crate) fn mark(&mut self, i: usize) {
        self.mark_timer(i);
        if !self.ready_flag[i] {
            self.ready_flag[i] = true;
            self.ready.push_back(i);
        }
        if !self.active_flag[i] {
            self.active_flag[i] = true;
            self.active.push(i);
        }
    }

    /// Re-reads the deadlines of connections whose timers may have changed.
    pub(crate) fn refresh(&mut self, deadline_of: impl Fn(usize) -> Option<Instant>) {
        for i in std::mem::take(&mut self.dirty) {
            self.dirty_flag[i] = false;
            if let Some(old) = self.timer_at[i].take() {
                self.timers.remove(&(old, i));
            }
            if let Some(t) = deadline_of(i) {
                self.timer_at[i] = Some(t);
                self.timers.insert((t, i));
            }
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().next().map(|(t, _)| *t)
    }

    /// A connection whose deadline is at or before `now`, removed from the timer set.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let &(t, i) = self.timers.iter().next()?;
        if t > now {
            return None;
        }
        self.timers.remove(&(t, i));
        self.timer_at[i] = None;
        Some(i)
    }

    /// The next connection that may have something to send.
    pub(crate) fn pop_ready(&mut self) -> Option<usize> {
        let i = self.ready.pop_front()?;
        self.ready_flag[i] = false;
        Some(i)
    }

    /// Puts a connection that sent something back at the end of the send queue (round robin).
    pub(crate) fn requeue(&mut self, i: usize) {
        if !self.ready_flag[i] {
            self.ready_flag[i] = true;
            self.ready.push_back(i);
        }
    }

    /// The connection has events for the application (raised while it was sending).
    pub(crate) fn activate(&mut self, i: usize) {
        self.ensure(i);
        if !self.active_flag[i] {
            self.active_flag[i] = true;
            self.active.push(i);
        }
    }

    /// The next connection touched since the last call.
    pub(crate) fn pop_active(&mut self) -> Option<usize> {
        let i = self.active.pop()?;
        self.active_flag[i] = false;
        Some(i)
    }

    /// The slot was freed.
    pub(crate) fn forget(&mut self, i: usize) {
        if i >= self.timer_at.len() {
            return;
        }
        if let Some(old) = self.timer_at[i].take() {
            self.timers.remove(&(old, i));
        }
        // Stale queue entries for a freed slot are harmless: the slot is empty or reused, and a
        // reused slot starts with a fresh mark.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_ready_and_active_are_tracked_without_scanning() {
        let mut a = Activity::default();
        let t = |n| Instant::from_nanos(n);
        a.mark(3);
        a.mark(1);
        a.mark(3);
        a.refresh(|i| Some(t(i as u64 * 10)));
        assert_eq!(a.next_deadline(), Some(t(10)));
        assert_eq!(a.pop_due(t(15)), Some(1));
        assert_eq!(a.pop_due(t(15)), None);
        assert_eq!(a.pop_ready(), Some(3));
        assert_eq!(a.pop_ready(), Some(1));
        assert_eq!(a.pop_ready(), None);
        a.requeue(1);
        assert_eq!(a.pop_ready(), Some(1));
        let mut active = vec![];
        while let Some(i) = a.pop_active() {
            active.push(i);
        }
        active.sort_unstable();
        assert_eq!(active, vec![1, 3]);
        a.mark_timer(3);
        a.refresh(|_| None);
        assert_eq!(a.next_deadline(), None);
    }
}
