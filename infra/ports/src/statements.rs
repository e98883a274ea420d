//! Counting the SQL statements one request runs: a task-local tally that the SQL adapters and
//! the view reads bump once per statement they send, and that a handler reads around its work
//! (the feed reports its statements per page in `titok_feed_sql_statements_total`).
//!
//! Outside [`counted`] nothing is tallied and [`one`] costs a thread-local lookup.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static STATEMENTS: Cell<u64>;
}

/// Run `work`, returning its output and the statements it sent (those of tasks it spawned are
/// not its own).
pub async fn counted<F: Future>(work: F) -> (F::Output, u64) {
    STATEMENTS
        .scope(Cell::new(0), async {
            let out = work.await;
            (out, STATEMENTS.with(Cell::get))
        })
        .await
}

/// One statement is being sent (by the task being counted, if any).
pub fn one() {
    let _ = STATEMENTS.try_with(|n| n.set(n.get() + 1));
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn statements_are_counted_inside_the_scope_only() {
        super::one();
        let ((), n) = super::counted(async {
            super::one();
            tokio::join!(async { super::one() }, async { super::one() });
        })
        .await;
        assert_eq!(n, 3);
    }
}
