//! Pure domain rules: audience expressions, message content, consent keywords and contact
//! import. No I/O here, so each rule is unit-tested on its own and shared by the engine,
//! the command handlers and the store.

pub mod audience;
pub mod consent;
pub mod content;
pub mod csv_import;
pub mod schedule;
