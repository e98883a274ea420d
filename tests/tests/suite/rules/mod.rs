//! The contract's rules: idempotency, exact counts, friends, ordering, paging, chat polling,
//! authorization, and the lenient parameter conventions — one file per kind of rule.

mod access;
mod actions;
mod paging;
mod parameters;
