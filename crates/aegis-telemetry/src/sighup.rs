//! [`SighupHub`]: one SIGHUP handler, many subscribers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use signal_hook::consts::SIGHUP;
use signal_hook::iterator::{Handle, Signals};
use tracing::Dispatch;
use tracing::subscriber::NoSubscriber;

use crate::{LogFile, TelemetryError};

type Callback = Arc<dyn Fn() + Send + Sync>;

/// Delivers SIGHUP (`systemctl reload aegis`) to every component that asked for it.
///
/// Several components react to SIGHUP: the log file reopens after logrotate, TLS
/// certificates reload, and so on. Only one place should own the signal, so the binary
/// starts one hub at startup and each component [`subscribes`](SighupHub::subscribe)
/// a callback. The hub runs one thread (built on `signal_hook::iterator::Signals`, so it
/// needs no async runtime) that, on each SIGHUP, calls every callback in subscription
/// order.
///
/// Callbacks run on the hub thread, one after another, so they must be quick: reopen a
/// file, or hand the work to the component (`tokio::sync::Notify::notify_one`, a channel
/// send, an atomic flag). A callback that panics is logged and the others still run.
/// Signals that arrive while callbacks are running are coalesced into one more round.
///
/// Installing the hub replaces SIGHUP's default action (terminating the process). Dropping
/// the hub stops its thread but leaves the handler installed, so a later SIGHUP is
/// ignored rather than fatal.
pub struct SighupHub {
    subscribers: Arc<Mutex<Vec<(String, Callback)>>>,
    rounds: Arc<AtomicU64>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SighupHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        f.debug_struct("SighupHub")
            .field("subscribers", &names)
            .field("rounds", &self.rounds())
            .finish_non_exhaustive()
    }
}

impl SighupHub {
    /// Registers the SIGHUP handler and starts the dispatch thread (`aegis-sighup`).
    ///
    /// # Errors
    ///
    /// [`TelemetryError::Signal`] or [`TelemetryError::SpawnThread`].
    pub fn start() -> Result<Self, TelemetryError> {
        let mut signals = Signals::new([SIGHUP]).map_err(TelemetryError::Signal)?;
        let handle = signals.handle();
        let subscribers: Arc<Mutex<Vec<(String, Callback)>>> = Arc::default();
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let subscribers = Arc::clone(&subscribers);
            let rounds = Arc::clone(&rounds);
            std::thread::Builder::new()
                .name("aegis-sighup".into())
                .spawn(move || {
                    for _signal in signals.forever() {
                        dispatch(&subscribers);
                        rounds.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .map_err(|error| {
                    handle.close();
                    TelemetryError::SpawnThread(error)
                })?
        };
        Ok(Self {
            subscribers,
            rounds,
            handle,
            thread: Some(thread),
        })
    }

    /// Adds `callback` to run on every SIGHUP from now on. `name` appears in the log if
    /// the callback panics.
    pub fn subscribe(&self, name: impl Into<String>, callback: impl Fn() + Send + Sync + 'static) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.into(), Arc::new(callback)));
    }

    /// How many SIGHUP rounds have finished (every callback returned). Useful in tests
    /// and health checks to see that a reload happened.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }
}

impl Drop for SighupHub {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            // The thread only ends by seeing the closed handle; a panic in it was already
            // reported by the panic hook.
            let _ = thread.join();
        }
    }
}

fn dispatch(subscribers: &Mutex<Vec<(String, Callback)>>) {
    // Snapshot first so a callback may subscribe without deadlocking.
    let snapshot: Vec<(String, Callback)> = subscribers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    tracing::debug!(
        function = crate::function_name!(),
        subscribers = snapshot.len(),
        "SIGHUP received"
    );
    for (name, callback) in snapshot {
        if catch_unwind(AssertUnwindSafe(|| callback())).is_err() {
            tracing::error!(function = crate::function_name!(), subscriber = %name, "SIGHUP subscriber panicked");
        }
    }
}

/// Subscribes `file` to `hub`: each SIGHUP reopens it and logs `Log file reopened`
/// (or `Log file reopen failed` at ERROR, keeping the old handle).
///
/// The messages go to the subscriber that is current where this function is called (the
/// global one after [`crate::init`], or a test's scoped one), since the hub thread has
/// no scoped subscriber of its own.
pub fn reopen_on_sighup(hub: &SighupHub, file: LogFile) {
    let current = tracing::dispatcher::get_default(Dispatch::clone);
    // Without a subscriber yet, log through whatever is global when the signal comes.
    let dispatch = (!current.is::<NoSubscriber>()).then_some(current);
    hub.subscribe("log file reopen", move || {
        let reopen = || match file.reopen() {
            Ok(()) => tracing::info!(function = crate::function_name!(), path = %file.path().display(), "Log file reopened"),
            Err(error) => tracing::error!(function = crate::function_name!(), %error, "Log file reopen failed"),
        };
        match &dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, reopen),
            None => reopen(),
        }
    });
}

/// Starts a [`SighupHub`] with the log file's reopen already subscribed.
///
/// Keep the returned hub alive for the life of the process and subscribe other
/// components to it; do not start a second hub for them.
///
/// # Errors
///
/// As [`SighupHub::start`].
pub fn spawn_sighup_reopen(file: LogFile) -> Result<SighupHub, TelemetryError> {
    let hub = SighupHub::start()?;
    reopen_on_sighup(&hub, file);
    Ok(hub)
}
