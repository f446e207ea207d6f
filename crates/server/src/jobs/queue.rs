//! The training queue: jobs wait their turn instead of being refused, served **round-robin by client** —
//! a client with ten jobs waiting does not hold back one with a single job: each client's next job is
//! taken in turn. The queue is bounded by the bytes its jobs' uploads hold ([`FairQueue::bytes`]); the
//! routes refuse a job only when that bound would be passed.
//!
//! [`Waiting`] wraps the queue for the training threads: they block on it until a job arrives or the jobs
//! are closed. Each change of the queue tells every waiting job its new place (`ahead`: the jobs that
//! will start before it), which the job's event stream reports as a `queued` event.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// One waiting job: its client and the bytes its upload holds.
pub trait Queued {
    /// The client, as per-client limits name it.
    fn client(&self) -> String;
    /// Bytes held while it waits.
    fn bytes(&self) -> usize;
}

/// The queue itself (no locking).
#[derive(Debug)]
pub struct FairQueue<J> {
    /// Each client with jobs waiting, in the order they are served, with its jobs in arrival order.
    clients: VecDeque<(String, VecDeque<J>)>,
    bytes: usize,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        FairQueue { clients: VecDeque::new(), bytes: 0 }
    }
}

impl<J: Queued + Clone> FairQueue<J> {
    /// Adds a job at the end of its client's line (a new client joins the end of the round).
    pub fn push(&mut self, job: J) {
        self.bytes += job.bytes();
        let client = job.client();
        match self.clients.iter_mut().find(|(c, _)| *c == client) {
            Some((_, jobs)) => jobs.push_back(job),
            None => self.clients.push_back((client, VecDeque::from([job]))),
        }
    }

    /// Takes the next job: the first of the client whose turn it is; that client moves to the end of the
    /// round if it has more.
    pub fn pop(&mut self) -> Option<J> {
        let (client, mut jobs) = self.clients.pop_front()?;
        let job = jobs.pop_front()?;
        if !jobs.is_empty() {
            self.clients.push_back((client, jobs));
        }
        self.bytes -= job.bytes();
        Some(job)
    }

    /// Removes the jobs `drop` selects (cancelled ones), keeping everyone's place otherwise.
    pub fn remove(&mut self, mut drop: impl FnMut(&J) -> bool) {
        let mut freed = 0;
        for (_, jobs) in &mut self.clients {
            jobs.retain(|j| {
                let gone = drop(j);
                if gone {
                    freed += j.bytes();
                }
                !gone
            });
        }
        self.clients.retain(|(_, jobs)| !jobs.is_empty());
        self.bytes -= freed;
    }

    /// The jobs in the order they will start.
    pub fn in_order(&self) -> Vec<J> {
        let mut lines: Vec<std::collections::vec_deque::Iter<'_, J>> =
            self.clients.iter().map(|(_, jobs)| jobs.iter()).collect();
        let mut out = Vec::with_capacity(self.len());
        while !lines.is_empty() {
            lines.retain_mut(|line| match line.next() {
                Some(j) => {
                    out.push(j.clone());
                    true
                }
                None => false,
            });
        }
        out
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.clients.iter().map(|(_, jobs)| jobs.len()).sum()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Bytes the waiting jobs hold.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The queue shared by the routes and the training threads.
#[derive(Debug)]
pub struct Waiting<J> {
    state: Mutex<(FairQueue<J>, bool)>,
    ready: Condvar,
}

impl<J: Queued + Clone> Waiting<J> {
    /// An empty, open queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Waiting { state: Mutex::new((FairQueue::default(), false)), ready: Condvar::new() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FairQueue<J>, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a job if the queue's bytes stay within `max_bytes` (the first job is always taken), and calls
    /// `tell` with the jobs in their new order before any training thread can take it (so a job's first
    /// event is its place); `Err` with the bytes held now.
    pub fn push(&self, job: J, max_bytes: usize, tell: impl FnOnce(&[J])) -> Result<(), usize> {
        let mut s = self.lock();
        if !s.0.is_empty() && s.0.bytes() + job.bytes() > max_bytes {
            return Err(s.0.bytes());
        }
        s.0.push(job);
        tell(&s.0.in_order());
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for the next job; `None` once closed. Also returns the jobs still waiting, in order.
    pub fn pop(&self) -> Option<(J, Vec<J>)> {
        let mut s = self.lock();
        loop {
            if s.1 {
                return None;
            }
            if let Some(job) = s.0.pop() {
                let order = s.0.in_order();
                return Some((job, order));
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Removes the jobs `drop` selects; returns the rest in order.
    pub fn remove(&self, drop: impl FnMut(&J) -> bool) -> Vec<J> {
        let mut s = self.lock();
        s.0.remove(drop);
        s.0.in_order()
    }

    /// Bytes held by waiting jobs.
    pub fn bytes(&self) -> usize {
        self.lock().0.bytes()
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.lock().0.is_empty()
    }

    /// Wakes every training thread to stop.
    pub fn close(&self) {
        self.lock().1 = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct J(&'static str, usize);

    impl Queued for J {
        fn client(&self) -> String {
            self.0[..1].to_string()
        }
        fn bytes(&self) -> usize {
            self.1
        }
    }

    #[test]
    fn clients_take_turns() {
        let mut q = FairQueue::default();
        for j in ["a1", "a2", "a3", "b1", "c1", "b2"] {
            q.push(J(j, 10));
        }
        let order: Vec<&str> = q.in_order().iter().map(|j| j.0).collect();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3"]);
        let mut popped = Vec::new();
        while let Some(j) = q.pop() {
            popped.push(j.0);
        }
        assert_eq!(popped, order, "pop follows the announced order");
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_late_client_waits_one_round_not_behind_everyone() {
        let mut q = FairQueue::default();
        for j in ["a1", "a2", "a3", "a4"] {
            q.push(J(j, 1));
        }
        assert_eq!(q.pop().unwrap().0, "a1");
        q.push(J("b1", 1));
        let order: Vec<&str> = q.in_order().iter().map(|j| j.0).collect();
        assert_eq!(order, ["a2", "b1", "a3", "a4"]);
        // A cancelled job leaves its client's turn in place.
        q.remove(|j| j.0 == "a2");
        let order: Vec<&str> = q.in_order().iter().map(|j| j.0).collect();
        assert_eq!(order, ["a3", "b1", "a4"]);
        assert_eq!((q.len(), q.bytes()), (3, 3));
    }

    #[test]
    fn the_byte_bound_refuses_only_beyond_it() {
        let w = Waiting::new();
        let mut told = Vec::new();
        assert!(w.push(J("a1", 70), 100, |o| told.push(o.len())).is_ok());
        assert_eq!(w.push(J("b1", 40), 100, |o| told.push(o.len())), Err(70));
        assert!(w.push(J("b2", 30), 100, |o| told.push(o.len())).is_ok());
        assert_eq!(told, [1, 2], "the order is told for each job taken, none for a refused one");
        let (first, rest) = w.pop().unwrap();
        assert_eq!((first.0, rest.len()), ("a1", 1));
        w.close();
        assert!(w.pop().is_none());
    }
}
