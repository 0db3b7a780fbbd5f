//! Pure domain rules: the values herald parses once (addresses, labels, attribute keys,
//! languages), audience expressions, message content, consent keywords and contact import. No
//! I/O here and no import from the rest of the crate, so each rule is unit-tested on its own and
//! shared by the engine, the command handlers, the channels and the store.

pub mod account;
pub mod actions;
pub mod address;
pub mod audience;
pub mod consent;
pub mod content;
pub mod csv_import;
pub mod delivery;
pub mod interactive;
pub mod label;
pub mod lang;
pub mod media;
pub mod recipient_status;
pub mod schedule;
pub mod skip;
pub mod template;
pub mod trigger;

pub use address::{Address, AddressKind};
pub use label::{AttrKey, Label};
pub use lang::Lang;
pub use recipient_status::RecipientStatus;
pub use skip::SkipReason;
