//! Limits on password guessing, in memory (per server process).
//!
//! Every login attempt is *reserved* before its password is checked: it counts as a
//! failure up front, in one step under one lock, so concurrent guesses cannot all pass a
//! check that none of them has recorded yet. A successful login refunds its reservation;
//! an attempt that never reached the verification (the server was busy) is refunded too.
//! Failures are counted in fixed windows of [`WINDOW`], under four keys:
//!
//! - email + client address: after [`PAIR_FREE_FAILURES`] failures each attempt waits
//!   longer (250 ms, doubling, at most 5 s); after [`PAIR_REFUSE_AFTER`] attempts are
//!   refused until the window ends. A success clears this key;
//! - email, over all addresses: refused after [`EMAIL_REFUSE_AFTER`], a higher ceiling, so
//!   one address guessing cannot lock the owner out: it hits its own email + address cap
//!   long before;
//! - client address, over all emails: refused after [`ADDRESS_REFUSE_AFTER`] (password
//!   spraying from one address);
//! - everything: refused after [`GLOBAL_REFUSE_AFTER`] (a distributed attack).
//!
//! An email + address that has logged in successfully within [`TRUST_TTL`] is exempt from
//! the last three ceilings (never from its own cap): an attacker guessing from elsewhere
//! cannot lock a user out of an address they use. A user on a new address may still be
//! refused while a distributed attack on their email lasts (at most until the window ends
//! after the attack stops).
//!
//! The client address is the TCP peer (`ConnectInfo`); behind a reverse proxy every
//! client shares the proxy's address. IPv6 addresses count by /64 (one host usually owns a
//! whole /64). Requests without a peer address share one "unknown" bucket.
//!
//! Memory is bounded: each map holds at most [`MAX_KEYS`] keys; when one is full, expired
//! keys go first, then the tenth with the fewest failures.
//!
//! Password verification (Argon2) itself is bounded too: at most one login per CPU
//! verifies at a time; a login that finds no slot within [`VERIFY_WAIT`] is refused with
//! RATE_LIMITED instead of queueing blocking threads.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures forgiven (per email + address) before attempts are slowed down.
pub const PAIR_FREE_FAILURES: u32 = 3;
/// Failures per email + address after which attempts are refused until the window ends.
pub const PAIR_REFUSE_AFTER: u32 = 20;
/// Failures per email (all addresses) after which attempts are refused.
pub const EMAIL_REFUSE_AFTER: u32 = 100;
/// Failures per client address (all emails) after which attempts are refused.
pub const ADDRESS_REFUSE_AFTER: u32 = 100;
/// Failures in total after which attempts are refused.
pub const GLOBAL_REFUSE_AFTER: u32 = 10_000;
/// How long failures are remembered (fixed windows from a key's first failure).
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Longest delay imposed on one attempt.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// How long a successful login exempts its email + address from the shared ceilings.
pub const TRUST_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most keys per map.
pub const MAX_KEYS: usize = 100_000;
/// Longest wait for a password-verification slot before the login is refused.
pub const VERIFY_WAIT: Duration = Duration::from_secs(1);
/// `Retry-After` of a login refused because every verification slot was busy.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The address a request came from, as the throttle counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAddress {
    /// The TCP peer.
    Peer(IpAddr),
    /// No peer address known (in-process requests): one shared bucket.
    Unknown,
}

impl ClientAddress {
    pub fn from_peer(peer: Option<SocketAddr>) -> Self {
        peer.map_or(Self::Unknown, |peer| Self::Peer(peer.ip()))
    }

    /// The key of the address: IPv4 as is, IPv6 by /64, IPv4-mapped IPv6 as IPv4.
    fn key(self) -> String {
        match self {
            Self::Unknown => "unknown".to_owned(),
            Self::Peer(IpAddr::V4(v4)) => v4.to_string(),
            Self::Peer(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

impl Failures {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.first) >= WINDOW
    }

    fn retry_after(&self, now: Instant) -> Duration {
        WINDOW.saturating_sub(now.duration_since(self.first))
    }
}

/// Failure counts by key, at most [`MAX_KEYS`] of them.
#[derive(Debug, Default)]
struct Counters(HashMap<String, Failures>);

impl Counters {
    /// The live failures of `key`.
    fn get(&self, key: &str, now: Instant) -> Option<Failures> {
        self.0.get(key).copied().filter(|f| !f.expired(now))
    }

    fn add(&mut self, key: &str, now: Instant) {
        if let Some(failures) = self.0.get_mut(key) {
            if failures.expired(now) {
                *failures = Failures { count: 0, first: now };
            }
            failures.count = failures.count.saturating_add(1);
            return;
        }
        if self.0.len() >= MAX_KEYS {
            self.make_room(now);
        }
        self.0.insert(key.to_owned(), Failures { count: 1, first: now });
    }

    fn subtract(&mut self, key: &str) {
        if let Some(failures) = self.0.get_mut(key) {
            failures.count = failures.count.saturating_sub(1);
            if failures.count == 0 {
                self.0.remove(key);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Drops expired keys, then, if still full, the tenth with the fewest failures (the
    /// oldest first among equals).
    fn make_room(&mut self, now: Instant) {
        self.0.retain(|_, f| !f.expired(now));
        if self.0.len() < MAX_KEYS {
            return;
        }
        let mut entries: Vec<(u32, Instant, &str)> = self
            .0
            .iter()
            .map(|(key, f)| (f.count, f.first, key.as_str()))
            .collect();
        let victims: Vec<String> = lowest_tenth(&mut entries)
            .iter()
            .map(|(_, _, key)| (*key).to_owned())
            .collect();
        for key in victims {
            self.0.remove(&key);
        }
    }
}

/// The lowest tenth (at least one) of `entries`, in no particular order.
fn lowest_tenth<T: Ord>(entries: &mut [T]) -> &[T] {
    let tenth = (entries.len() / 10).max(1).min(entries.len());
    if tenth < entries.len() {
        entries.select_nth_unstable(tenth);
    }
    &entries[..tenth]
}

#[derive(Debug)]
struct State {
    pairs: Counters,
    emails: Counters,
    addresses: Counters,
    global: Failures,
    /// Email + address keys that logged in successfully, with when.
    trusted: HashMap<String, Instant>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            pairs: Counters::default(),
            emails: Counters::default(),
            addresses: Counters::default(),
            global: Failures {
                count: 0,
                first: Instant::now(),
            },
            trusted: HashMap::new(),
        }
    }
}

impl State {
    fn is_trusted(&self, pair: &str, now: Instant) -> bool {
        self.trusted
            .get(pair)
            .is_some_and(|at| now.duration_since(*at) < TRUST_TTL)
    }

    fn trust(&mut self, pair: &str, now: Instant) {
        if !self.trusted.contains_key(pair) && self.trusted.len() >= MAX_KEYS {
            self.trusted.retain(|_, at| now.duration_since(*at) < TRUST_TTL);
            if self.trusted.len() >= MAX_KEYS {
                // Forget the oldest tenth.
                let mut entries: Vec<(Instant, &str)> =
                    self.trusted.iter().map(|(key, at)| (*at, key.as_str())).collect();
                let victims: Vec<String> = lowest_tenth(&mut entries)
                    .iter()
                    .map(|(_, key)| (*key).to_owned())
                    .collect();
                for key in victims {
                    self.trusted.remove(&key);
                }
            }
        }
        self.trusted.insert(pair.to_owned(), now);
    }

    fn global_count(&self, now: Instant) -> Option<Failures> {
        Some(self.global).filter(|g| !g.expired(now) && g.count > 0)
    }
}

/// Counts of what the throttle did, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    /// Attempts refused because of too many failures.
    pub refused: u64,
    /// Attempts refused because every verification slot stayed busy.
    pub busy: u64,
}

/// See the module doc.
#[derive(Debug)]
pub struct LoginThrottle {
    state: Mutex<State>,
    verification_slots: Semaphore,
    refused: AtomicU64,
    busy: AtomicU64,
}

impl Default for LoginThrottle {
    /// One verification slot per CPU.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::with_verification_slots(cpus)
    }
}

/// A reserved login attempt: counted as a failure until [`Attempt::succeeded`] or
/// [`Attempt::refund`]; dropping it keeps the failure.
#[must_use = "an attempt counts as a failure unless settled"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    pair: String,
    email: String,
    address: String,
    delay: Duration,
}

impl Attempt<'_> {
    /// How long to wait before checking the password (backoff of this email + address).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The password was right: refund the reservation, clear this email + address and
    /// exempt it from the shared ceilings for [`TRUST_TTL`].
    pub fn succeeded(self) {
        let mut state = self.throttle.state();
        let now = Instant::now();
        state.pairs.remove(&self.pair);
        state.emails.subtract(&self.email);
        state.addresses.subtract(&self.address);
        state.global.count = state.global.count.saturating_sub(1);
        state.trust(&self.pair, now);
    }

    /// The password was never checked: take the reservation back.
    pub fn refund(self) {
        let mut state = self.throttle.state();
        state.pairs.subtract(&self.pair);
        state.emails.subtract(&self.email);
        state.addresses.subtract(&self.address);
        state.global.count = state.global.count.saturating_sub(1);
    }
}

impl LoginThrottle {
    /// A throttle letting `slots` password verifications run at once (at least one).
    pub fn with_verification_slots(slots: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            verification_slots: Semaphore::new(slots.max(1)),
            refused: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the maps consistent, even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves an attempt to log in as `email` (normalized) from `address`, or refuses it
    /// with how long to wait.
    pub fn reserve(&self, email: &str, address: ClientAddress) -> Result<Attempt<'_>, Duration> {
        let address = address.key();
        let pair = format!("{email}\n{address}");
        let now = Instant::now();
        let mut state = self.state();
        let pair_failures = state.pairs.get(&pair, now);
        let mut refusal = pair_failures
            .filter(|f| f.count >= PAIR_REFUSE_AFTER)
            .map(|f| f.retry_after(now));
        if refusal.is_none() && !state.is_trusted(&pair, now) {
            let shared = [
                (state.emails.get(email, now), EMAIL_REFUSE_AFTER),
                (state.addresses.get(&address, now), ADDRESS_REFUSE_AFTER),
                (state.global_count(now), GLOBAL_REFUSE_AFTER),
            ];
            refusal = shared
                .into_iter()
                .filter_map(|(failures, ceiling)| failures.filter(|f| f.count >= ceiling))
                .map(|f| f.retry_after(now))
                .max();
        }
        if let Some(retry) = refusal {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(retry.max(Duration::from_secs(1)));
        }
        let delay = backoff(pair_failures.map_or(0, |f| f.count));
        state.pairs.add(&pair, now);
        state.emails.add(email, now);
        state.addresses.add(&address, now);
        if state.global.expired(now) {
            state.global = Failures { count: 0, first: now };
        }
        state.global.count = state.global.count.saturating_add(1);
        Ok(Attempt {
            throttle: self,
            pair,
            email: email.to_owned(),
            address,
            delay,
        })
    }

    /// A password-verification slot, waiting at most [`VERIFY_WAIT`]; `None` when every
    /// slot stayed busy (answer RATE_LIMITED rather than queue).
    pub async fn verification_slot(&self) -> Option<SemaphorePermit<'_>> {
        match tokio::time::timeout(VERIFY_WAIT, self.verification_slots.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                self.busy.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The verification slots themselves (tests hold them to simulate a busy server).
    pub fn verification_slots(&self) -> &Semaphore {
        &self.verification_slots
    }

    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            refused: self.refused.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

/// The delay before an attempt when `failures` are already counted for its email + address.
fn backoff(failures: u32) -> Duration {
    if failures < PAIR_FREE_FAILURES {
        return Duration::ZERO;
    }
    let exponent = (failures - PAIR_FREE_FAILURES).min(10);
    Duration::from_millis(250u64 << exponent).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> ClientAddress {
        ClientAddress::Peer(ip.parse().expect("ip"))
    }

    /// Reserves and drops (a failed attempt), `n` times; all must be admitted.
    fn fail(throttle: &LoginThrottle, email: &str, address: ClientAddress, n: u32) {
        for i in 0..n {
            let attempt = throttle.reserve(email, address);
            assert!(attempt.is_ok(), "attempt {i} of {email} refused");
        }
    }

    #[test]
    fn slows_down_then_refuses_and_forgets_on_success() {
        let throttle = LoginThrottle::default();
        let a = peer("192.0.2.1");
        let email = "alice@example.com";
        for expected in [0, 0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000] {
            let attempt = throttle.reserve(email, a).expect("admitted");
            assert_eq!(attempt.delay(), Duration::from_millis(expected));
        }
        fail(&throttle, email, a, PAIR_REFUSE_AFTER - 10);
        let retry = throttle.reserve(email, a).err().expect("refused");
        assert!(retry > Duration::from_secs(14 * 60) && retry <= WINDOW);
        assert_eq!(throttle.stats().refused, 1);
    }

    #[test]
    fn a_reservation_counts_before_the_attempt_ends_and_success_refunds_it() {
        let throttle = LoginThrottle::default();
        let a = peer("192.0.2.1");
        // Reservations held at once (attempts in flight) count: the cap is never exceeded.
        let held: Vec<_> = (0..PAIR_REFUSE_AFTER)
            .map(|_| throttle.reserve("bob@example.com", a).expect("admitted"))
            .collect();
        assert!(throttle.reserve("bob@example.com", a).is_err());
        // A refund gives one back; a success clears the email + address.
        let mut held = held.into_iter();
        held.next().expect("one").refund();
        let attempt = throttle.reserve("bob@example.com", a).expect("refunded slot");
        assert!(throttle.reserve("bob@example.com", a).is_err());
        attempt.succeeded();
        let fresh = throttle.reserve("bob@example.com", a).expect("cleared");
        assert_eq!(fresh.delay(), Duration::ZERO);
    }

    #[test]
    fn an_attacker_cannot_lock_the_owner_out_of_an_address_they_used() {
        let throttle = LoginThrottle::default();
        let email = "carol@example.com";
        let home = peer("198.51.100.7");
        throttle.reserve(email, home).expect("admitted").succeeded();
        // Guesses from many addresses exhaust the email's ceiling…
        let attackers = EMAIL_REFUSE_AFTER / PAIR_REFUSE_AFTER;
        for i in 0..attackers {
            fail(
                &throttle,
                email,
                peer(&format!("203.0.113.{i}")),
                PAIR_REFUSE_AFTER,
            );
        }
        assert!(throttle.reserve(email, peer("203.0.113.200")).is_err());
        // …but not for the address the owner logged in from.
        let attempt = throttle
            .reserve(email, home)
            .expect("the owner's address is exempt");
        assert_eq!(attempt.delay(), Duration::ZERO);
    }

    #[test]
    fn one_address_spraying_many_emails_is_refused() {
        let throttle = LoginThrottle::default();
        let a = peer("192.0.2.9");
        for i in 0..ADDRESS_REFUSE_AFTER {
            fail(&throttle, &format!("user{i}@example.com"), a, 1);
        }
        assert!(throttle.reserve("someone@example.com", a).is_err());
        assert!(
            throttle
                .reserve("someone@example.com", peer("192.0.2.10"))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_counts_by_64_and_unknown_peers_share_a_bucket() {
        assert_eq!(
            peer("2001:db8:1:2:3:4:5:6").key(),
            peer("2001:db8:1:2:ffff::1").key()
        );
        assert_ne!(peer("2001:db8:1:2::1").key(), peer("2001:db8:1:3::1").key());
        assert_eq!(peer("::ffff:192.0.2.1").key(), peer("192.0.2.1").key());
        assert_eq!(ClientAddress::from_peer(None), ClientAddress::Unknown);
    }

    #[test]
    fn a_full_map_forgets_the_keys_with_the_fewest_failures() {
        let now = Instant::now();
        let mut counters = Counters::default();
        for i in 0..MAX_KEYS - 1 {
            counters.add(&format!("k{i}"), now);
        }
        for _ in 0..5 {
            counters.add("persistent", now);
        }
        assert_eq!(counters.0.len(), MAX_KEYS);
        counters.add("new", now);
        assert_eq!(counters.0.len(), MAX_KEYS - MAX_KEYS / 10 + 1);
        assert!(counters.get("persistent", now).is_some_and(|f| f.count == 5));
        assert!(counters.get("new", now).is_some_and(|f| f.count == 1));
    }
}
