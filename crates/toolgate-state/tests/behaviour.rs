//! The behaviour every counter store must show, run over each store kind: each `async fn`
//! below takes a fresh [`Backend`] and is instantiated once per store by `store_suite!`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use toolgate_state::{ReserveOutcome, Taken};

/// Instantiates every listed behaviour for every store kind, as `<behaviour>::<store>`.
macro_rules! store_suite {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$behaviour(super::Backend::memory()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$behaviour(super::Backend::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                super::$behaviour(super::Backend::redis()).await;
            }
        }
    )*};
}

store_suite!(
    exact_limit,
    all_or_none_across_items,
    rollback_returns_quota,
    rollback_after_the_window_moved_leaves_the_new_window_alone,
    rollback_never_goes_below_zero,
    decimal_amounts_are_exact,
    duplicate_keys_in_one_call_are_summed,
    prefixes_isolate_counters,
    fixed_window_resets_at_the_utc_boundary,
    sliding_window_prevents_the_boundary_burst,
    sliding_window_weights_the_previous_window,
    current_reports_the_value,
    cleanup_removes_old_windows,
    concurrent_tasks_never_overshoot,
    empty_reservation_is_trivially_granted,
);

async fn exact_limit(b: Backend) {
    let store = b.store("toolgate");
    let item = calls("create_issue._rate_minute", fixed(MINUTE), 3);
    for _ in 0..3 {
        reserved(&*store, [item.clone()]).await;
    }
    assert_eq!(exceeded(&*store, [item.clone()]).await, (0, amount("3")));
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("3")
    );
}

async fn all_or_none_across_items(b: Backend) {
    let store = b.store("toolgate");
    let global = calls("_global._rate_hour", fixed(HOUR), 10);
    let tool = calls("refund._rate_hour", fixed(HOUR), 1);
    let spend = item("refund.spend_day", fixed(24 * HOUR), "100", "40");
    reserved(&*store, [global.clone(), tool.clone(), spend.clone()]).await;
    // The tool counter is full: the global and spend counters must not move either.
    assert_eq!(
        exceeded(&*store, [global.clone(), tool.clone(), spend.clone()]).await,
        (1, amount("1"))
    );
    assert_eq!(
        store.current(&global.key, global.window).await.unwrap(),
        amount("1")
    );
    assert_eq!(
        store.current(&spend.key, spend.window).await.unwrap(),
        amount("40")
    );
    // The last item failing leaves the earlier ones untouched too.
    let big_spend = item("refund.spend_day", fixed(24 * HOUR), "100", "61");
    assert_eq!(
        exceeded(&*store, [global.clone(), big_spend]).await,
        (1, amount("40"))
    );
    assert_eq!(
        store.current(&global.key, global.window).await.unwrap(),
        amount("1")
    );
}

async fn rollback_returns_quota(b: Backend) {
    let store = b.store("toolgate");
    let item = calls("search._rate_minute", fixed(MINUTE), 2);
    let first = reserved(&*store, [item.clone()]).await;
    let second = reserved(&*store, [item.clone()]).await;
    store.commit(&first).await.unwrap();
    exceeded(&*store, [item.clone()]).await;
    store.rollback(&second).await.unwrap();
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("1")
    );
    reserved(&*store, [item.clone()]).await;
    exceeded(&*store, [item]).await;
}

async fn rollback_after_the_window_moved_leaves_the_new_window_alone(b: Backend) {
    let store = b.store("toolgate");
    let item = calls("search._rate_minute", fixed(MINUTE), 5);
    b.at(T0 + 50 * SECOND);
    let old = reserved(&*store, [item.clone(), item.clone()]).await;
    assert_eq!(old.taken[0].window_start_ms, T0);
    // The call settles after the minute turned; two calls already landed in the new window.
    b.at(T0 + MINUTE + 5 * SECOND);
    reserved(&*store, [item.clone()]).await;
    reserved(&*store, [item.clone()]).await;
    store.rollback(&old).await.unwrap();
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("2"),
        "the rollback must not subtract from the newer window"
    );
    // Once the old window is gone entirely, a rollback is a no-op that creates nothing.
    let late = reserved(&*store, [item.clone()]).await;
    b.at(T0 + 10 * MINUTE);
    reserved(&*store, [calls("other", fixed(MINUTE), 5)]).await; // lets cleanup run
    let before = b.stored_windows();
    store.rollback(&late).await.unwrap();
    assert_eq!(b.stored_windows(), before);
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("0")
    );
}

async fn rollback_never_goes_below_zero(b: Backend) {
    let store = b.store("toolgate");
    let item = calls("search._rate_minute", fixed(MINUTE), 3);
    let ticket = reserved(&*store, [item.clone()]).await;
    store.rollback(&ticket).await.unwrap();
    store.rollback(&ticket).await.unwrap(); // settled twice by mistake
    let forged = toolgate_state::Ticket {
        taken: vec![Taken {
            amount: amount("50"),
            ..ticket.taken[0].clone()
        }],
    };
    store.rollback(&forged).await.unwrap();
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("0")
    );
    assert_eq!(admitted(&*store, &item, 10).await, 3, "no negative credit");
}

async fn decimal_amounts_are_exact(b: Backend) {
    let store = b.store("toolgate");
    // Ten times 0.1 is exactly 1.00: binary floats would make it 0.9999999999999999 or
    // 1.0000000000000002 and get the tenth call wrong.
    let dime = item("payments.spend_day", fixed(24 * HOUR), "1.00", "0.1");
    assert_eq!(admitted(&*store, &dime, 10).await, 10);
    assert_eq!(exceeded(&*store, [dime.clone()]).await, (0, amount("1")));
    let cent = item("payments.spend_day", fixed(24 * HOUR), "1.01", "0.01");
    let ticket = reserved(&*store, [cent.clone()]).await;
    assert_eq!(
        store.current(&dime.key, dime.window).await.unwrap(),
        amount("1.01")
    );
    store.rollback(&ticket).await.unwrap();
    assert_eq!(
        store.current(&dime.key, dime.window).await.unwrap(),
        amount("1")
    );
    let micro = item(
        "payments.spend_day",
        fixed(24 * HOUR),
        "1.000001",
        "0.000001",
    );
    reserved(&*store, [micro.clone()]).await;
    exceeded(&*store, [micro]).await;
}

async fn duplicate_keys_in_one_call_are_summed(b: Backend) {
    let store = b.store("toolgate");
    let two = item("k", fixed(MINUTE), "3", "2");
    // 2 + 2 > 3, although each alone fits: refused, reporting what the second saw.
    assert_eq!(
        exceeded(&*store, [two.clone(), two.clone()]).await,
        (1, amount("2"))
    );
    assert_eq!(
        store.current("k", fixed(MINUTE)).await.unwrap(),
        amount("0")
    );
    let one = item("k", fixed(MINUTE), "3", "1");
    let ticket = reserved(&*store, [one.clone(), two.clone()]).await;
    assert_eq!(
        store.current("k", fixed(MINUTE)).await.unwrap(),
        amount("3")
    );
    store.rollback(&ticket).await.unwrap();
    assert_eq!(
        store.current("k", fixed(MINUTE)).await.unwrap(),
        amount("0")
    );
    // The same key with another window length is another counter.
    let hourly = item("k", fixed(HOUR), "3", "2");
    reserved(&*store, [two, hourly]).await;
}

async fn prefixes_isolate_counters(b: Backend) {
    let a = b.store("tenant-a");
    let a_again = b.store("tenant-a");
    let other = b.store("tenant-b");
    let item = calls("search._rate_minute", fixed(MINUTE), 2);
    reserved(&*a, [item.clone()]).await;
    reserved(&*a_again, [item.clone()]).await;
    assert_eq!(exceeded(&*a, [item.clone()]).await, (0, amount("2")));
    assert_eq!(
        other.current(&item.key, item.window).await.unwrap(),
        amount("0")
    );
    assert_eq!(admitted(&*other, &item, 5).await, 2);
}

async fn fixed_window_resets_at_the_utc_boundary(b: Backend) {
    let store = b.store("toolgate");
    let hourly = calls("deploy._rate_hour", fixed(HOUR), 2);
    b.at(T0 + 10 * HOUR + 59 * MINUTE + 59 * SECOND + 999); // 10:59:59.999Z
    assert_eq!(admitted(&*store, &hourly, 5).await, 2);
    b.at(T0 + 11 * HOUR); // 11:00:00.000Z
    assert_eq!(admitted(&*store, &hourly, 5).await, 2);
    let daily = calls("deploy._rate_day", fixed(24 * HOUR), 1);
    b.at(T0 + 24 * HOUR - 1); // 23:59:59.999Z
    assert_eq!(admitted(&*store, &daily, 3).await, 1);
    b.at(T0 + 24 * HOUR); // midnight UTC
    assert_eq!(admitted(&*store, &daily, 3).await, 1);
}

async fn sliding_window_prevents_the_boundary_burst(b: Backend) {
    let store = b.store("toolgate");
    let slide = calls("send_email._rate_minute", sliding(MINUTE), 10);
    let fixed_item = calls("send_sms._rate_minute", fixed(MINUTE), 10);
    b.at(T0 + 59 * SECOND); // 00:59
    assert_eq!(admitted(&*store, &slide, 10).await, 10);
    assert_eq!(admitted(&*store, &fixed_item, 10).await, 10);
    b.at(T0 + MINUTE + SECOND); // 01:01
    let burst = admitted(&*store, &slide, 10).await;
    assert!(
        burst <= 1,
        "sliding window let {burst} calls through at the boundary"
    );
    assert_eq!(
        admitted(&*store, &fixed_item, 10).await,
        10,
        "a fixed window resets"
    );
}

async fn sliding_window_weights_the_previous_window(b: Backend) {
    let store = b.store("toolgate");
    let slide = calls("send_email._rate_minute", sliding(MINUTE), 10);
    b.at(T0 + 20 * SECOND);
    assert_eq!(admitted(&*store, &slide, 10).await, 10);
    // Half of the previous minute still overlaps: its 10 count as 5, so 5 more fit.
    b.at(T0 + MINUTE + 30 * SECOND);
    assert_eq!(
        store.current(&slide.key, slide.window).await.unwrap(),
        amount("5")
    );
    assert_eq!(admitted(&*store, &slide, 10).await, 5);
    // A full window later only the 5 of the (now previous) window remain, weighted by 1/2.
    b.at(T0 + 2 * MINUTE + 30 * SECOND);
    assert_eq!(
        store.current(&slide.key, slide.window).await.unwrap(),
        amount("2.5")
    );
    b.at(T0 + 4 * MINUTE);
    assert_eq!(
        store.current(&slide.key, slide.window).await.unwrap(),
        amount("0")
    );
}

async fn current_reports_the_value(b: Backend) {
    let store = b.store("toolgate");
    assert_eq!(
        store.current("never.used", fixed(MINUTE)).await.unwrap(),
        amount("0")
    );
    reserved(&*store, [item("x", fixed(MINUTE), "10", "2.5")]).await;
    assert_eq!(
        store.current("x", fixed(MINUTE)).await.unwrap(),
        amount("2.5")
    );
    assert_eq!(store.current("x", fixed(HOUR)).await.unwrap(), amount("0"));
}

async fn cleanup_removes_old_windows(b: Backend) {
    let store = b.store("toolgate");
    reserved(&*store, [calls("a", fixed(MINUTE), 5)]).await;
    // A minute on, `a`'s window is the previous one: sliding windows still need it.
    b.at(T0 + MINUTE);
    reserved(&*store, [calls("b", fixed(MINUTE), 5)]).await;
    assert_eq!(b.stored_windows(), 2);
    // Two minutes further, both are older than any previous window.
    b.at(T0 + 3 * MINUTE);
    reserved(&*store, [calls("c", fixed(MINUTE), 5)]).await;
    assert_eq!(b.stored_windows(), 1);
    // Bounded: many short-lived keys do not accumulate.
    for minute in 4..20 {
        b.at(T0 + minute * MINUTE);
        for k in 0..20 {
            reserved(
                &*store,
                [calls(&format!("session-{minute}-{k}"), fixed(MINUTE), 5)],
            )
            .await;
        }
    }
    b.clock.advance(Duration::from_secs(180));
    reserved(&*store, [calls("z", fixed(MINUTE), 5)]).await;
    assert_eq!(b.stored_windows(), 1);
}

async fn concurrent_tasks_never_overshoot(b: Backend) {
    let store = b.store("toolgate");
    let item = calls("_global._rate_minute", fixed(MINUTE), 100);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            let item = item.clone();
            tokio::spawn(async move {
                let mut won = 0;
                for _ in 0..100 {
                    if let ReserveOutcome::Reserved(t) =
                        store.reserve(std::slice::from_ref(&item)).await.unwrap()
                    {
                        store.commit(&t).await.unwrap();
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 100);
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("100")
    );
}

async fn empty_reservation_is_trivially_granted(b: Backend) {
    let store = b.store("toolgate");
    let ticket = reserved(&*store, Vec::new()).await;
    assert!(ticket.taken.is_empty());
    store.commit(&ticket).await.unwrap();
    store.rollback(&ticket).await.unwrap();
}
