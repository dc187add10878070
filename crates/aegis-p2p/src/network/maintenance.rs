//! Background upkeep: the periodic tick (dials that are due, ban and rate-limit expiry,
//! the known-peers file, the `No peers available` warning) and TLS certificate reloads.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Inner, LOG_TARGET, NO_PEERS_LOG_INTERVAL, State, TICK, canonical};
use crate::ban_file::{self, StoredBan};

impl Inner {
    pub(super) async fn maintenance_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let now = Instant::now();
            let mut dials = Vec::new();
            {
                let mut state = self.lock();
                if now.saturating_duration_since(last_sweep) >= Duration::from_secs(1) {
                    last_sweep = now;
                    for ip in state.bans.sweep(now) {
                        aegis_telemetry::info!(target: LOG_TARGET, "Ban lifted for {ip}");
                    }
                    self.metrics
                        .banned_ips
                        .set(state.bans.banned_count() as i64);
                    state.limiter.sweep(now);
                    let connected: HashSet<IpAddr> = state
                        .peers
                        .values()
                        .map(|peer| canonical(peer.remote.ip()))
                        .collect();
                    state
                        .validator_addresses
                        .sweep(now, |ip| connected.contains(&ip));
                    state.book.save_if_dirty();
                    drop(state);
                    self.save_bans(false);
                    self.log_suppressed(now);
                    state = self.lock();
                }
                if state.peers.is_empty() {
                    let due = state.no_peers_logged.is_none_or(|last| {
                        now.saturating_duration_since(last) >= NO_PEERS_LOG_INTERVAL
                    });
                    if due {
                        state.no_peers_logged = Some(now);
                        aegis_telemetry::warn!(
                            target: LOG_TARGET,
                            address = %self.local_addr,
                            "No peers available"
                        );
                    }
                } else {
                    state.no_peers_logged = None;
                }
                let room = self.config.max_peers.saturating_sub(state.peers.len());
                let State { book, peers, .. } = &mut *state;
                for (address, entry) in book.entries.iter_mut() {
                    if dials.len() >= room {
                        break;
                    }
                    let connected = entry.key.is_some_and(|key| peers.contains_key(&key));
                    if entry.dialing || entry.is_self || connected || now < entry.next_dial {
                        continue;
                    }
                    entry.dialing = true;
                    aegis_telemetry::debug!(
                        target: LOG_TARGET,
                        %address,
                        source = ?entry.source,
                        attempts = entry.attempts,
                        "Dialling peer"
                    );
                    dials.push(address.clone());
                }
            }
            for address in dials {
                tokio::spawn(Arc::clone(&self).dial(address));
            }
        }
        self.lock().book.save_if_dirty();
        self.save_bans(true);
    }

    /// Writes `data/p2p/bans.txt` if the bans changed since the last write (or always, with
    /// `force`), outside the state lock. A failed write is logged; the next change retries.
    pub(super) fn save_bans(&self, force: bool) {
        let Some(file) = &self.bans_file else {
            return;
        };
        let path = file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let bans = {
            let mut state = self.lock();
            // With bans off, the file is left as it is (bans it holds apply again once they
            // are turned back on, if still live).
            if !state.bans.enabled() || (!state.bans.take_changed() && !force) {
                return;
            }
            state.bans.bans(now)
        };
        let now_ms = crate::book::now_ms();
        let stored: Vec<StoredBan> = bans
            .into_iter()
            .map(|(ip, left)| StoredBan {
                ip,
                until_ms: now_ms.saturating_add(left.as_millis() as u64),
            })
            .collect();
        if let Err(error) = ban_file::save(&path, &stored) {
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                path = %path.display(),
                %error,
                "Cannot write the ban file {}: {error}; bans stay in force until the node stops",
                path.display()
            );
        }
    }

    pub(super) async fn tls_reload_loop(self: Arc<Self>) {
        let mut last_error: Option<String> = None;
        loop {
            let forced = tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.tls_reload_interval) => false,
                () = self.tls_reload.notified() => true,
            };
            match self.tls.reload(forced) {
                Ok(true) => {
                    last_error = None;
                    let expiry = self
                        .tls
                        .certificate()
                        .and_then(|cert| crate::tls::seconds_until_expiry(&cert));
                    aegis_telemetry::info!(
                        target: LOG_TARGET,
                        cert_file = %self.tls.files().cert_file.display(),
                        expires_in_s = expiry,
                        "TLS certificate reloaded"
                    );
                }
                Ok(false) => {}
                Err(error) => {
                    let text = error.to_string();
                    if forced || last_error.as_deref() != Some(text.as_str()) {
                        aegis_telemetry::error!(
                            target: LOG_TARGET,
                            error = %text,
                            "TLS certificate reload failed; keeping the current certificate"
                        );
                    }
                    last_error = Some(text);
                }
            }
        }
    }
}
