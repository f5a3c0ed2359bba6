//! Wake-ups: a connection of its own that `LISTEN`s on the schema's channel and
//! counts notifications (reconnecting when it breaks), and waiting on it.
//!
//! Nothing depends on a notification arriving: `wait_for_more` checks the table
//! once it listens and returns at its timeout anyway, and the caller reads the feed
//! by sequence number.

use std::{sync::Arc, time::Duration};

use flock_core::StoreError;
use futures::StreamExt;
use tokio::{sync::watch, task::JoinHandle};
use tokio_postgres::{AsyncMessage, NoTls};

/// How long the listener waits before reconnecting, at first and at most.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// What waiters watch: whether the listener is listening now, and a count that
/// grows with every notification and every change of connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wake {
    listening: bool,
    count: u64,
}

/// The listening task; stopped when dropped.
pub(crate) struct Listener {
    wake: watch::Receiver<Wake>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Starts listening on `channel` (on the current tokio runtime).
    fn spawn(config: tokio_postgres::Config, channel: String) -> Self {
        let (tx, wake) = watch::channel(Wake::default());
        let task = tokio::spawn(listen(config, channel, tx));
        Self { wake, task }
    }
}

async fn listen(config: tokio_postgres::Config, channel: String, tx: watch::Sender<Wake>) {
    let mut backoff = BACKOFF.0;
    loop {
        if listen_once(&config, &channel, &tx).await {
            backoff = BACKOFF.0;
        }
        // Waiters re-check the table: what was notified while this connection
        // broke is found there.
        tx.send_modify(|w| {
            w.listening = false;
            w.count += 1;
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// One connection's life: connect, `LISTEN`, count notifications until it ends.
/// Returns whether it got as far as listening.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    tx: &watch::Sender<Wake>,
) -> bool {
    let Ok((client, mut connection)) = config.connect(NoTls).await else {
        return false;
    };
    let (note_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The connection must be polled for the client's statements to run too.
    let drive = async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(_) = message
                && note_tx.send(()).is_err()
            {
                return;
            }
        }
    };
    let count = async {
        if client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await
            .is_err()
        {
            return false;
        }
        tx.send_modify(|w| {
            w.listening = true;
            w.count += 1;
        });
        while notes.recv().await.is_some() {
            tx.send_modify(|w| w.count += 1);
        }
        true
    };
    tokio::select! {
        () = drive => tx.borrow().listening,
        listened = count => listened,
    }
}

/// The store's listener, started by the first wait.
#[derive(Default)]
pub(crate) struct ListenerSlot(parking_lot::Mutex<Option<Arc<Listener>>>);

impl ListenerSlot {
    /// The running listener, started (again) when there is none or it stopped
    /// (its runtime ended).
    pub(crate) fn get(&self, config: &tokio_postgres::Config, channel: &str) -> Arc<Listener> {
        let mut slot = self.0.lock();
        match &*slot {
            Some(listener) if !listener.task.is_finished() => listener.clone(),
            _ => {
                let listener = Arc::new(Listener::spawn(config.clone(), channel.to_owned()));
                *slot = Some(listener.clone());
                listener
            }
        }
    }
}

impl Listener {
    /// Resolves when `check` (run once listening) finds what the caller waits for,
    /// a notification or a reconnection suggests it may be there, or `timeout`
    /// passes.
    pub(crate) async fn wait<F>(&self, timeout: Duration, check: F) -> Result<(), StoreError>
    where
        F: Future<Output = Result<bool, StoreError>>,
    {
        let mut wake = self.wake.clone();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // Check only once listening: whatever commits after the check then
        // notifies this listener.
        while !wake.borrow_and_update().listening {
            tokio::select! {
                () = &mut deadline => return Ok(()),
                changed = wake.changed() => if changed.is_err() {
                    deadline.await;
                    return Ok(());
                },
            }
        }
        if check.await? {
            return Ok(());
        }
        tokio::select! {
            () = &mut deadline => {}
            _ = wake.changed() => {}
        }
        Ok(())
    }
}
