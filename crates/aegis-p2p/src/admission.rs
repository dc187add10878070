//! Admission of inbound connections before they authenticate (docs/security.md,
//! "Admission"): which addresses are validators', the handshake slots each kind of
//! address may hold, and the rate-limited log of refusals.
//!
//! Before its Hello a connection is anonymous: a genesis validator and a stranger on the
//! same address (a shared host, a NAT, every node of a testnet on 127.0.0.1) look alike.
//! So the budgets strangers exhaust must not be the ones validators need:
//!
//! - **Validator addresses** ([`ValidatorAddresses`]): the IPs of the genesis validators'
//!   `p2p_address`es, and every IP a validator has authenticated from. Connections from
//!   them are never refused by a ban or by the strangers' rate limit, and hold handshake
//!   slots of their own ([`VALIDATOR_ADDRESS_HANDSHAKES`] per address) that strangers
//!   elsewhere cannot take. When those slots are full, a new connection takes the slot of
//!   the least advanced handshake ([`Progress`]), oldest first: a connection that stalls
//!   (one byte, or nothing) can never keep a validator's connection out, it is evicted.
//! - **Strangers** (every other address): the per-IP token bucket, bans, at most
//!   `MAX_HANDSHAKES_PER_IP` handshakes per address and a shared total.
//!
//! Time comes in as an argument so the rules are tested without sleeping; every map has a
//! named bound.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Handshake slots reserved for each validator address, apart from the strangers' total.
/// A validator dials once per peer at a time; the margin lets several validators share an
/// address (a testnet on one host) and absorbs redials.
pub const VALIDATOR_ADDRESS_HANDSHAKES: usize = 16;
/// Most addresses learned from validators' authentications (beside the genesis ones);
/// past it the address learned longest ago is forgotten.
pub const MAX_LEARNED_VALIDATOR_ADDRESSES: usize = 4096;
/// How long an address a validator authenticated from stays a validator address after
/// the last authentication from it, unless a validator is connected from it.
pub const LEARNED_VALIDATOR_ADDRESS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Window of the refusal log: per address and kind, the first [`REFUSAL_LOG_BURST`]
/// events of a window are logged one by one, the rest counted and reported in one line
/// when the window ends.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Lines logged one by one per address, kind and window: as many as fail2ban's default
/// `maxretry`, so the shipped jail can act within the first window.
pub const REFUSAL_LOG_BURST: u32 = 5;
/// Most addresses the refusal log tracks; events of further addresses are counted
/// together and reported without an address.
pub const MAX_REFUSAL_LOG_ADDRESSES: usize = 4096;

/// Which budget an inbound connection draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// From an address no validator is known at.
    Stranger,
    /// From a genesis validator's address, or one a validator authenticated from.
    Validator,
}

/// The addresses validators connect from.
#[derive(Debug, Default)]
pub struct ValidatorAddresses {
    genesis: HashSet<IpAddr>,
    learned: HashMap<IpAddr, Instant>,
}

impl ValidatorAddresses {
    pub fn new(genesis: impl IntoIterator<Item = IpAddr>) -> ValidatorAddresses {
        ValidatorAddresses {
            genesis: genesis.into_iter().collect(),
            learned: HashMap::new(),
        }
    }

    /// Adds a genesis validator's address (resolved from a host name after start-up).
    pub fn add_genesis(&mut self, ip: IpAddr) {
        self.genesis.insert(ip);
    }

    /// Records that a validator authenticated from `ip` at `now`; true if the address was
    /// not a validator address before.
    pub fn learn(&mut self, ip: IpAddr, now: Instant) -> bool {
        let known = self.contains(ip);
        if !self.learned.contains_key(&ip) && self.learned.len() >= MAX_LEARNED_VALIDATOR_ADDRESSES
        {
            let oldest = self
                .learned
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.learned.remove(&oldest);
            }
        }
        self.learned.insert(ip, now);
        debug_assert!(self.learned.len() <= MAX_LEARNED_VALIDATOR_ADDRESSES);
        !known
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.genesis.contains(&ip) || self.learned.contains_key(&ip)
    }

    pub fn lane(&self, ip: IpAddr) -> Lane {
        if self.contains(ip) {
            Lane::Validator
        } else {
            Lane::Stranger
        }
    }

    /// Forgets learned addresses older than [`LEARNED_VALIDATOR_ADDRESS_TTL`] from which no
    /// validator is connected (`connected`).
    pub fn sweep(&mut self, now: Instant, connected: impl Fn(IpAddr) -> bool) {
        self.learned.retain(|ip, at| {
            connected(*ip) || now.saturating_duration_since(*at) < LEARNED_VALIDATOR_ADDRESS_TTL
        });
    }
}

/// How far an inbound handshake got. Eviction takes the least advanced first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Progress {
    /// Accepted; no complete TLS ClientHello yet (nothing, or one stalled byte).
    Connected = 0,
    /// A complete ClientHello arrived; the TLS handshake is under way.
    ClientHello = 1,
    /// TLS finished with a client certificate that verified; the Hello is awaited.
    TlsDone = 2,
}

/// A handshake's progress, updated by its task and read by the slot table.
#[derive(Clone, Debug, Default)]
pub struct ProgressCell(Arc<AtomicU8>);

impl ProgressCell {
    pub fn set(&self, progress: Progress) {
        self.0.store(progress as u8, Ordering::Relaxed);
    }

    pub fn get(&self) -> Progress {
        match self.0.load(Ordering::Relaxed) {
            0 => Progress::Connected,
            1 => Progress::ClientHello,
            _ => Progress::TlsDone,
        }
    }
}

#[derive(Debug)]
struct Pending {
    id: u64,
    started: Instant,
    progress: ProgressCell,
    cancel: CancellationToken,
}

/// A handshake admitted into a slot. Its task watches `cancel` (eviction) and updates
/// `progress`; the slot is given back with [`HandshakeSlots::release`].
#[derive(Debug)]
pub struct Admitted {
    pub id: u64,
    pub lane: Lane,
    pub progress: ProgressCell,
    pub cancel: CancellationToken,
    /// Whether an older, less advanced handshake from the same address was evicted to
    /// make room.
    pub evicted: bool,
}

/// Why no slot was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    #[error("too many handshakes in progress from this address ({max})")]
    PerAddress { max: usize },
    #[error(
        "too many handshakes in progress from addresses not known as validators' ({max} in all)"
    )]
    Total { max: usize },
}

/// Inbound handshakes in progress, by lane.
#[derive(Debug)]
pub struct HandshakeSlots {
    max_strangers: usize,
    max_strangers_per_ip: usize,
    strangers: usize,
    strangers_per_ip: HashMap<IpAddr, usize>,
    validators: HashMap<IpAddr, Vec<Pending>>,
    next_id: u64,
}

impl HandshakeSlots {
    /// At most `max_strangers` strangers' handshakes in all and `max_strangers_per_ip` per
    /// address; [`VALIDATOR_ADDRESS_HANDSHAKES`] per validator address besides.
    pub fn new(max_strangers: usize, max_strangers_per_ip: usize) -> HandshakeSlots {
        HandshakeSlots {
            max_strangers,
            max_strangers_per_ip,
            strangers: 0,
            strangers_per_ip: HashMap::new(),
            validators: HashMap::new(),
            next_id: 1,
        }
    }

    /// A slot for a new connection from `ip` in `lane`. A validator address's connection is
    /// always admitted: when its slots are full, the least advanced of them (oldest first)
    /// is cancelled and its slot taken.
    pub fn admit(&mut self, ip: IpAddr, lane: Lane, now: Instant) -> Result<Admitted, SlotRefusal> {
        let id = self.next_id;
        self.next_id += 1;
        let progress = ProgressCell::default();
        let cancel = CancellationToken::new();
        let mut evicted = false;
        match lane {
            Lane::Stranger => {
                let per_ip = self.strangers_per_ip.get(&ip).copied().unwrap_or(0);
                if per_ip >= self.max_strangers_per_ip {
                    return Err(SlotRefusal::PerAddress {
                        max: self.max_strangers_per_ip,
                    });
                }
                if self.strangers >= self.max_strangers {
                    return Err(SlotRefusal::Total {
                        max: self.max_strangers,
                    });
                }
                self.strangers += 1;
                *self.strangers_per_ip.entry(ip).or_insert(0) += 1;
            }
            Lane::Validator => {
                let pending = self.validators.entry(ip).or_default();
                if pending.len() >= VALIDATOR_ADDRESS_HANDSHAKES {
                    let victim = pending
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, p)| (p.progress.get(), p.started, p.id))
                        .map(|(index, _)| index);
                    if let Some(index) = victim {
                        pending.swap_remove(index).cancel.cancel();
                        evicted = true;
                    }
                }
                pending.push(Pending {
                    id,
                    started: now,
                    progress: progress.clone(),
                    cancel: cancel.clone(),
                });
                debug_assert!(pending.len() <= VALIDATOR_ADDRESS_HANDSHAKES);
            }
        }
        Ok(Admitted {
            id,
            lane,
            progress,
            cancel,
            evicted,
        })
    }

    /// Gives back the slot of handshake `id` (a no-op for one already evicted).
    pub fn release(&mut self, id: u64, ip: IpAddr, lane: Lane) {
        match lane {
            Lane::Stranger => {
                debug_assert!(self.strangers > 0, "released more strangers than admitted");
                self.strangers = self.strangers.saturating_sub(1);
                if let Some(count) = self.strangers_per_ip.get_mut(&ip) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.strangers_per_ip.remove(&ip);
                    }
                }
            }
            Lane::Validator => {
                if let Some(pending) = self.validators.get_mut(&ip) {
                    pending.retain(|p| p.id != id);
                    if pending.is_empty() {
                        self.validators.remove(&ip);
                    }
                }
            }
        }
    }

    /// Strangers' handshakes in progress.
    pub fn strangers(&self) -> usize {
        self.strangers
    }

    /// Handshakes in progress from validator address `ip`.
    pub fn validator_handshakes(&self, ip: IpAddr) -> usize {
        self.validators.get(&ip).map_or(0, Vec::len)
    }
}

/// What a refusal-log line reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// `Authentication failed for peer from <IP>: …`
    AuthFailure,
    /// `Unauthorized access from <IP>: connection refused: …`
    Refused,
}

#[derive(Debug)]
struct LogEntry {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
    last_reason: String,
}

/// Events of one address and kind that were counted, not logged, in a window that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppressed {
    /// `None` for the addresses beyond [`MAX_REFUSAL_LOG_ADDRESSES`], counted together.
    pub ip: Option<IpAddr>,
    pub kind: RefusalKind,
    pub count: u64,
    /// The last event's reason.
    pub reason: String,
}

/// Rate-limits refusal and failure lines per address, counting what it does not log.
#[derive(Debug)]
pub struct RefusalLog {
    interval: Duration,
    entries: HashMap<(IpAddr, RefusalKind), LogEntry>,
    overflow: HashMap<RefusalKind, (Instant, u64, String)>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::new(REFUSAL_LOG_INTERVAL)
    }
}

impl RefusalLog {
    /// A log whose windows last `interval`.
    pub fn new(interval: Duration) -> RefusalLog {
        RefusalLog {
            interval,
            entries: HashMap::new(),
            overflow: HashMap::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records an event. `Some(earlier)`: log this one now, noting `earlier` events of a
    /// window that ended without being reported yet (usually 0). `None`: counted, to be
    /// reported by [`due`](Self::due).
    pub fn record(
        &mut self,
        ip: IpAddr,
        kind: RefusalKind,
        reason: &str,
        now: Instant,
    ) -> Option<u64> {
        let key = (ip, kind);
        // Ended windows leave the table in `due`, which the node runs every second; a
        // flood from more addresses than the table holds is counted in one sum meanwhile
        // (no sweep here: it would cost a pass over the table per event).
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_REFUSAL_LOG_ADDRESSES {
            let overflow = self
                .overflow
                .entry(kind)
                .or_insert_with(|| (now, 0, String::new()));
            overflow.1 += 1;
            overflow.2.clear();
            overflow.2.push_str(reason);
            return None;
        }
        let entry = self.entries.entry(key).or_insert_with(|| LogEntry {
            window_start: now,
            logged: 0,
            suppressed: 0,
            last_reason: String::new(),
        });
        let mut earlier = 0;
        if now.saturating_duration_since(entry.window_start) >= self.interval {
            earlier = entry.suppressed;
            *entry = LogEntry {
                window_start: now,
                logged: 0,
                suppressed: 0,
                last_reason: String::new(),
            };
        }
        if entry.logged < REFUSAL_LOG_BURST {
            entry.logged += 1;
            Some(earlier)
        } else {
            entry.suppressed += 1;
            entry.last_reason.clear();
            entry.last_reason.push_str(reason);
            None
        }
    }

    /// The counts of windows that have ended with events not logged; those windows are
    /// closed.
    pub fn due(&mut self, now: Instant) -> Vec<Suppressed> {
        let mut out = Vec::new();
        let interval = self.interval;
        self.entries.retain(|(ip, kind), entry| {
            if now.saturating_duration_since(entry.window_start) < interval {
                return true;
            }
            if entry.suppressed > 0 {
                out.push(Suppressed {
                    ip: Some(*ip),
                    kind: *kind,
                    count: entry.suppressed,
                    reason: std::mem::take(&mut entry.last_reason),
                });
            }
            false
        });
        self.overflow.retain(|kind, (since, count, reason)| {
            if now.saturating_duration_since(*since) < interval {
                return true;
            }
            out.push(Suppressed {
                ip: None,
                kind: *kind,
                count: *count,
                reason: std::mem::take(reason),
            });
            false
        });
        out
    }

    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[test]
    fn genesis_and_learned_addresses_are_validator_addresses() {
        let t0 = Instant::now();
        let mut addresses = ValidatorAddresses::new([ip(1)]);
        assert_eq!(addresses.lane(ip(1)), Lane::Validator);
        assert_eq!(addresses.lane(ip(2)), Lane::Stranger);
        assert!(addresses.learn(ip(2), t0));
        assert!(!addresses.learn(ip(2), t0));
        assert!(!addresses.learn(ip(1), t0));
        assert_eq!(addresses.lane(ip(2)), Lane::Validator);
        // Learned addresses expire unless a validator is connected from them.
        let later = t0 + LEARNED_VALIDATOR_ADDRESS_TTL;
        addresses.sweep(later, |a| a == ip(2));
        assert!(addresses.contains(ip(2)));
        addresses.sweep(later, |_| false);
        assert!(!addresses.contains(ip(2)));
        assert!(addresses.contains(ip(1)), "genesis addresses never expire");
    }

    #[test]
    fn learned_addresses_are_bounded() {
        let t0 = Instant::now();
        let mut addresses = ValidatorAddresses::default();
        for i in 0..=MAX_LEARNED_VALIDATOR_ADDRESSES as u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            addresses.learn(IpAddr::from(i.to_be_bytes()), at);
        }
        assert_eq!(addresses.learned.len(), MAX_LEARNED_VALIDATOR_ADDRESSES);
        assert!(
            !addresses.contains(IpAddr::from(0u32.to_be_bytes())),
            "oldest forgotten"
        );
    }

    #[test]
    fn strangers_are_refused_past_their_bounds_and_validators_are_not() {
        let t0 = Instant::now();
        let mut slots = HandshakeSlots::new(3, 2);
        let a = slots.admit(ip(1), Lane::Stranger, t0).unwrap();
        slots.admit(ip(1), Lane::Stranger, t0).unwrap();
        assert_eq!(
            slots.admit(ip(1), Lane::Stranger, t0).unwrap_err(),
            SlotRefusal::PerAddress { max: 2 }
        );
        slots.admit(ip(2), Lane::Stranger, t0).unwrap();
        assert_eq!(
            slots.admit(ip(3), Lane::Stranger, t0).unwrap_err(),
            SlotRefusal::Total { max: 3 }
        );
        // The strangers' total does not touch the validators' slots.
        for _ in 0..VALIDATOR_ADDRESS_HANDSHAKES {
            let admitted = slots.admit(ip(9), Lane::Validator, t0).unwrap();
            assert!(!admitted.evicted);
        }
        slots.release(a.id, ip(1), Lane::Stranger);
        slots.admit(ip(3), Lane::Stranger, t0).unwrap();
        assert_eq!(slots.strangers(), 3);
    }

    /// Issue 10, finding 2: stalled connections from a validator's address cannot keep the
    /// validator's own handshake out; the least advanced, oldest one gives way.
    #[test]
    fn a_full_validator_address_evicts_the_least_advanced_oldest_handshake() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut slots = HandshakeSlots::new(64, 8);
        let honest = slots.admit(ip(1), Lane::Validator, at(0)).unwrap();
        honest.progress.set(Progress::ClientHello);
        let mut stalls = Vec::new();
        for ms in 1..VALIDATOR_ADDRESS_HANDSHAKES as u64 {
            stalls.push(slots.admit(ip(1), Lane::Validator, at(ms)).unwrap());
        }
        // The lane is full: each new stall evicts the oldest stall, never the honest
        // handshake that got further.
        for (round, ms) in (100..200u64).enumerate() {
            let newest = slots.admit(ip(1), Lane::Validator, at(ms)).unwrap();
            assert!(newest.evicted);
            assert!(!honest.cancel.is_cancelled(), "round {round}");
            stalls.push(newest);
        }
        assert_eq!(
            slots.validator_handshakes(ip(1)),
            VALIDATOR_ADDRESS_HANDSHAKES
        );
        assert_eq!(
            stalls.iter().filter(|s| !s.cancel.is_cancelled()).count(),
            VALIDATOR_ADDRESS_HANDSHAKES - 1
        );
        // Among equals, the oldest goes first.
        honest.progress.set(Progress::Connected);
        slots.admit(ip(1), Lane::Validator, at(300)).unwrap();
        assert!(honest.cancel.is_cancelled());
        // Releasing an evicted handshake changes nothing.
        slots.release(honest.id, ip(1), Lane::Validator);
        assert_eq!(
            slots.validator_handshakes(ip(1)),
            VALIDATOR_ADDRESS_HANDSHAKES
        );
    }

    #[test]
    fn refusals_are_logged_in_bursts_and_the_rest_counted() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        let kind = RefusalKind::Refused;
        for _ in 0..REFUSAL_LOG_BURST {
            assert_eq!(log.record(ip(1), kind, "rate limited", t0), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(log.record(ip(1), kind, "rate limited", t0), None);
        }
        // Other addresses and kinds have their own windows.
        assert_eq!(log.record(ip(2), kind, "banned", t0), Some(0));
        assert_eq!(
            log.record(ip(1), RefusalKind::AuthFailure, "x", t0),
            Some(0)
        );
        assert!(log.due(t0 + Duration::from_secs(1)).is_empty());
        let due = log.due(t0 + REFUSAL_LOG_INTERVAL);
        assert_eq!(
            due,
            vec![Suppressed {
                ip: Some(ip(1)),
                kind,
                count: 7,
                reason: "rate limited".into()
            }]
        );
        assert_eq!(log.tracked(), 0);
        // A window that ended unreported is noted on the next line instead.
        for _ in 0..REFUSAL_LOG_BURST + 2 {
            log.record(ip(3), kind, "banned", t0);
        }
        assert_eq!(
            log.record(ip(3), kind, "banned", t0 + REFUSAL_LOG_INTERVAL),
            Some(2)
        );
    }

    #[test]
    fn the_refusal_log_is_bounded() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        for i in 0..MAX_REFUSAL_LOG_ADDRESSES as u32 + 10 {
            log.record(IpAddr::from(i.to_be_bytes()), RefusalKind::Refused, "r", t0);
        }
        assert_eq!(log.tracked(), MAX_REFUSAL_LOG_ADDRESSES);
        let due = log.due(t0 + REFUSAL_LOG_INTERVAL);
        assert_eq!(
            due,
            vec![Suppressed {
                ip: None,
                kind: RefusalKind::Refused,
                count: 10,
                reason: "r".into()
            }]
        );
    }
}
