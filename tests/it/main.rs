//! herald's integration tests: one binary, one file per feature, all through public interfaces.
//! Set `HERALD_TEST_BACKEND=postgres` to run them on PostgreSQL.

mod support;

mod commands_doc;
mod console_flow;
mod whatsapp_client;
mod whatsapp_errors;
mod whatsapp_run;
