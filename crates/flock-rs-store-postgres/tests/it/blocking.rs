//! `register_agent` is synchronous in the trait: it must work (not deadlock, not
//! panic) from inside a current-thread runtime whose pool connections it cannot
//! drive while blocked, from a multi-thread runtime, and from outside any runtime.

use std::{sync::mpsc, time::Duration};

use flock_core::{BlackboardStore, ClusterStore};

use crate::support::{fresh_store, item, skip};

/// Runs `test` on a thread of its own with a current-thread runtime, failing if it
/// has not finished within a minute (a deadlock would hang it forever).
fn on_a_current_thread_runtime(test: impl Future<Output = ()> + Send + 'static) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(test);
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("register_agent inside a current-thread runtime hung (deadlock)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test panicked"),
    }
}

#[test]
fn registering_inside_a_current_thread_runtime_does_not_deadlock() {
    if skip() {
        return;
    }
    on_a_current_thread_runtime(async {
        let store = fresh_store().await;
        // The pool's connections now live on this runtime, which blocks below.
        let first = item(1);
        store.publish(first.clone()).await.unwrap();
        store.register_agent("a").unwrap();
        store.register_agent("a").unwrap();
        let second = item(2);
        store.publish(second.clone()).await.unwrap();
        let waiting = store.unconsumed("a").await.unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].id, second.id, "a sees only what came after it");
        assert_eq!(store.head().await.unwrap(), 2);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_inside_a_multi_thread_runtime() {
    if skip() {
        return;
    }
    let store = fresh_store().await;
    store.publish(item(1)).await.unwrap();
    store.register_agent("a").unwrap();
    store.publish(item(2)).await.unwrap();
    assert_eq!(store.unconsumed("a").await.unwrap().len(), 1);
}

#[test]
fn registering_outside_any_runtime() {
    if skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(fresh_store());
    store.register_agent("a").unwrap();
    runtime.block_on(store.publish(item(1))).unwrap();
    assert_eq!(runtime.block_on(store.unconsumed("a")).unwrap().len(), 1);
}
